"""Every code snippet in README.md and docs/*.md is executed, so the docs cannot drift from the code.

Rules for a fenced block (checked here, per block):

- ```python: run in a subprocess, in a folder holding ``OUT`` (a real export of a real store made by this
  test, as ``consentry store export`` writes it) and ``policy.toml`` (the example policy IT deploys).
  Every python block must run; it cannot be skipped.
- ```sh / ```shell / ```bash / ```console: run with ``bash -euo pipefail`` in the same folder, in a
  sandboxed home (``HOME``, ``CONSENTRY_HOME``, ``XDG_*`` under the test's temporary folder, no display),
  with ``consentry`` on ``PATH``. A ``console`` block runs only its ``$ `` lines (the rest is output).
  A block that cannot run here (it installs packages, needs a desktop, a store's data folder, or has
  placeholders such as ``ID``) must say so on the line right before it: ``<!-- not-run: the reason -->``.
- ```text, another language (toml, json) or no tag: shown, not run, so it may hold no command line
  (one that does must be tagged sh/console and run, or marked). docs/cli.md, generated from ``--help``,
  is checked by tests/agent/test_cli_docs.py instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.store_kit import T0, Agent, Harness, running_store
from store.export import export_parquet

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "shell", "bash", "console"}
PYTHON = {"python", "py", "python3"}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)[^\n]*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->\s*$")
# A line an employee, IT or an engineer would type: a block holding one is a snippet, whatever its tag.
_COMMAND = re.compile(r"^\s*(\$ |consentry\b|\./scripts/|\.venv/|python3? |pip3? |sudo |apt-get |bash |curl )")
SNIPPET_TIMEOUT = 300
UNCLOSED = "<unclosed>"


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    not_run: str | None  # the reason given in a not-run marker, if any

    @property
    def where(self) -> str:
        return f"{_rel(self.doc)}:{self.line}"


def _rel(doc: Path) -> str:
    return str(doc.relative_to(ROOT)) if doc.is_relative_to(ROOT) else doc.name


def extract_blocks(doc: Path) -> list[Block]:
    """The fenced code blocks of one markdown file, with the not-run marker right before each."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence = match["fence"]
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i])
            i += 1
        if i >= len(lines):  # reported by a test, not at collection, so the other blocks still run
            blocks.append(Block(doc, start + 1, UNCLOSED, "\n".join(body) + "\n", None))
            break
        i += 1
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = _NOT_RUN.match(previous)
        indent = len(match["indent"])
        text = "\n".join(line[indent:] if line[:indent].strip() == "" else line for line in body)
        blocks.append(Block(doc, start + 1, match["lang"].lower(), text + "\n", marker["reason"] if marker else None))
    return blocks


ALL_BLOCKS = [block for doc in DOCS for block in extract_blocks(doc)]


def _blocks(langs: set[str]) -> list[Block]:
    return [b for b in ALL_BLOCKS if b.lang in langs]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a real export (``OUT``) of a real store holding two devices' approved batches."""
    root = tmp_path_factory.mktemp("docs")
    work = root / "work"
    work.mkdir()
    with running_store("dir", root / "store") as store:
        for agent in (Agent(), Agent()):
            store.enroll(agent)
            with store.client(agent) as client:
                client.upload(store.shippable(agent, 12)[1])
        export_parquet(store.backend, store.keys, work / "OUT", now=T0)
        _build_release(store, work / "store")  # docs/release.md reads the release from the store's table
    shutil.copy(ROOT / "packaging" / "policy.example.toml", work / "policy.toml")
    return work


def _build_release(store: Harness, root: Path) -> None:
    """A governed release of the two devices' keyboard data (k = 2), built as `consentry dataset build` does."""
    from protocol import SigningKey, b64encode
    from protocol.categories import Category
    from store.releases.consumers import ConsumerConfig, ReleasePolicy
    from store.releases.governance import build_release, decide_release, request_release, sign_decision
    from store.releases.governance_sink import TableReleaseSink, open_release_table
    from store.releases.requests import sign_request

    consumer = SigningKey.generate()
    policy = ReleasePolicy(k_min=2, consumers=ConsumerConfig(keys={"ml-team": b64encode(consumer.public_bytes)}))
    now = T0 + 2 * 86_400
    request = sign_request(
        consumer,
        release_id="0" * 31 + "1",
        purpose="work-pattern-research",
        categories=[Category.KEYBOARD],
        period_start=T0 - 86_400,
        period_end=T0 + 86_400,
        description="docs example",
        created=now,
    )
    stewards = store.settings.stewards
    status = request_release(store.backend, store.keys, policy, stewards, request, now=now)
    for signer in store.stewards.signers[: stewards.approvals_required]:
        decision = sign_decision(signer, status.release_id, status.manifest_sha256, "approve", created=now)
        decide_release(store.backend, store.keys, stewards, decision, now=now)
    sink = TableReleaseSink(open_release_table(store.settings, root, "dir", None, "consentry"))
    build_release(store.backend, store.keys, stewards, status.release_id, sink, now=now, retention_days=30)


def _sandbox_env(work: Path) -> dict[str, str]:
    """A clean environment: nothing of the real home, no display, offline Hugging Face datasets."""
    home = work.parent / "home"
    home.mkdir(exist_ok=True)
    venv_bin = Path(sys.executable).parent
    found = venv_bin / "consentry" if (venv_bin / "consentry").exists() else shutil.which("consentry")
    assert found, "the consentry command is not installed beside this python; run: pip install -e ."
    venv_bin = Path(found).parent
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "CONSENTRY_HOME": str(home / "consentry"),
        "CONSENTRY_POLICY": str(home / "no-machine-policy.toml"),  # absent: the embedded defaults
        "CONSENTRY_KEYSTORE": "file",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "HF_HOME": str(home / "hf"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "NO_COLOR": "1",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
    }
    if "CONSENTRY_TEST_PG_DSN" in os.environ:
        env["CONSENTRY_TEST_PG_DSN"] = os.environ["CONSENTRY_TEST_PG_DSN"]
    return env


def _run(argv: list[str], work: Path, block: Block) -> None:
    result = subprocess.run(
        argv, cwd=work, env=_sandbox_env(work), capture_output=True, text=True, timeout=SNIPPET_TIMEOUT, check=False
    )
    assert result.returncode == 0, (
        f"{block.where}: the {block.lang} snippet fails (exit {result.returncode}); fix the docs or the code"
        + (
            ", or, if it cannot run in a sandboxed home, put <!-- not-run: reason --> right before it"
            * (block.lang in SHELL)
        )
        + ".\n"
        f"--- snippet ---\n{block.body}--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
    )


def _shell_script(block: Block) -> str:
    if block.lang != "console":
        return block.body
    return "\n".join(line[2:] for line in block.body.splitlines() if line.startswith("$ ")) + "\n"


def test_the_docs_have_snippets_of_both_kinds() -> None:
    # A parser that found nothing would make every test below pass vacuously.
    assert len(ALL_BLOCKS) > 20
    assert _blocks(PYTHON) and _blocks(SHELL)


@pytest.mark.parametrize("block", _blocks(PYTHON), ids=lambda b: b.where)
def test_python_snippet_runs(block: Block, workdir: Path) -> None:
    assert block.not_run is None, f"{block.where}: every python snippet must run; remove the not-run marker"
    _run([sys.executable, "-c", block.body], workdir, block)


@pytest.mark.parametrize("block", _blocks(SHELL), ids=lambda b: b.where)
def test_shell_snippet_runs_or_says_why_not(block: Block, workdir: Path) -> None:
    if block.not_run is not None:
        assert len(block.not_run) >= 10, f"{block.where}: give a real reason in the not-run marker"
        return
    script = _shell_script(block)
    assert script.strip(), f"{block.where}: a console block with no '$ ' command line"
    _run(["bash", "-euo", "pipefail", "-c", script], workdir, block)


@pytest.mark.parametrize(
    "block", [b for b in ALL_BLOCKS if b.lang not in SHELL | PYTHON | {UNCLOSED}], ids=lambda b: b.where
)
def test_blocks_that_are_not_run_hold_no_command(block: Block) -> None:
    if block.doc == ROOT / "docs" / "cli.md":
        return  # generated from --help and checked against it by tests/agent/test_cli_docs.py
    commands = [line for line in block.body.splitlines() if _COMMAND.match(line)]
    assert not commands, (
        f"{block.where}: this block holds commands ({commands[0].strip()!r}) but is tagged {block.lang or 'nothing'}; "
        "tag it ```sh so it runs, and if it cannot run here put <!-- not-run: reason --> right before it"
    )


def test_every_code_block_is_closed() -> None:
    unclosed = [b.where for b in ALL_BLOCKS if b.lang == UNCLOSED]
    assert not unclosed, f"code blocks opened and never closed: {unclosed}"


def test_not_run_markers_sit_only_on_shell_blocks() -> None:
    misplaced = [b.where for b in ALL_BLOCKS if b.not_run is not None and b.lang not in SHELL]
    assert not misplaced, f"not-run markers apply to shell blocks only: {misplaced}"


def test_the_extractor_reads_markers_tags_and_console_prompts(tmp_path: Path) -> None:
    doc = tmp_path / "probe.md"
    sample = (
        "# probe\n\n<!-- not-run: needs a desktop session -->\n```sh\nxdg-open x\n```\n\n"
        "```console\n$ echo hi\nhi\n```\n\n  ```python\n  print(1)\n  ```\n\n````\n```\nstill open\n"
    )
    doc.write_text(sample, encoding="utf-8")
    blocks = extract_blocks(doc)
    assert [(b.lang, b.not_run) for b in blocks] == [
        ("sh", "needs a desktop session"),
        ("console", None),
        ("python", None),
        (UNCLOSED, None),
    ]
    assert _shell_script(blocks[1]) == "echo hi\n" and blocks[2].body == "print(1)\n"


def test_the_export_card_snippets_run_in_the_export_folder(workdir: Path) -> None:
    """The dataset card and datasheet an export carries are docs too: their python runs as written."""
    out = workdir / "OUT"
    blocks = [b for name in ("README.md", "DATASHEET.md") for b in extract_blocks(out / name) if b.lang in PYTHON]
    assert blocks, "the export's dataset card shows how to load it"
    for block in blocks:
        _run([sys.executable, "-c", block.body], out, block)
