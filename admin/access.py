"""How a steward's tools reach the store: the steward's key file, the store's URL and log key (options,
else the machine policy), and the check on the manifest hash a steward is asked to sign.

Shared by ``consentry steward`` (``admin.steward_cmd``), its review page (``admin.review``) and
``consentry store verify-log --full`` (``admin.store_cmd``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

KEY_FILE_NAME = "steward-ed25519.key"

key_file_option = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The steward's private key file (default: $CONSENTRY_HOME/steward/steward-ed25519.key).",
)
store_url_option = click.option("--store-url", help="The store's base URL (default: the machine policy's store.url).")


def default_key_file() -> Path:
    from vault.paths import default_home

    return default_home() / "steward" / KEY_FILE_NAME


def load_signer(key_file: Path | None) -> Any:
    """The steward's ``SigningKey`` from ``key_file`` (default: the steward folder of $CONSENTRY_HOME)."""
    from protocol import SigningKey
    from protocol.errors import ConsentryError
    from protocol.keyfile import read_key_file

    path = key_file or default_key_file()
    if not path.exists():
        raise click.ClickException(f"no steward key at {path}. Run: consentry steward init")
    try:
        return SigningKey(read_key_file(path, "ed25519"))
    except ConsentryError as exc:  # loose permissions, a damaged or newer key file, a wrong key
        raise click.ClickException(str(exc)) from None


def machine_store(instead: str) -> Any:
    """The machine policy's [store] section (None if it has none); ``instead`` is the next step on a bad policy."""
    from protocol.errors import PolicyError
    from vault.paths import default_policy_path
    from vault.policy import load_policy

    try:
        return load_policy(default_policy_path()).store
    except PolicyError as exc:
        raise click.ClickException(f"{exc}\n{instead}") from None


def resolve_store_url(url: str | None) -> str:
    """--store-url, else the machine policy's store.url."""
    if url:
        return url
    section = machine_store("Or pass --store-url.")
    if section is None:
        raise click.UsageError("no store URL: pass --store-url or set [store] url in the machine policy")
    return str(section.url)


def store_tls_ca(url: str) -> str | None:
    """The machine policy's [store] tls_ca when ``url`` is its store: steward tools pin it as the agent does.

    Another URL (``--store-url`` naming a different store) gets the system trust store.
    """
    section = machine_store("Or pass --store-url.")
    if section is None or not section.tls_ca or str(section.url).rstrip("/") != url.rstrip("/"):
        return None
    return str(section.tls_ca)


def shown_manifest_digest(batch_id: str, review: Any) -> str:
    """The hash a steward signs: recomputed from the manifest the store showed, never taken on its word.

    A store (or anything between it and the steward) that shows one manifest but names another's hash
    would otherwise collect a signature for a batch nobody reviewed. ``ValueError`` says what is wrong.
    """
    from protocol import manifest_digest

    if review.manifest.batch_id != batch_id or review.status.batch_id != batch_id:
        raise ValueError(
            f"the store answered with another batch than {batch_id}; nothing was signed. "
            "Tell the store operator; check the id with: consentry steward queue"
        )
    digest: str = manifest_digest(review.manifest)
    if digest != review.status.manifest_sha256:
        raise ValueError(
            f"the hash the store names for batch {batch_id} does not match the manifest it showed; "
            "nothing was signed. Tell the store operator and the other data stewards."
        )
    return digest


WITHHELD_NOTE = (
    "withheld: the device key id this version-1 manifest (from an older agent) names; "
    "the hash recomputed here covers it"
)


def steward_json(review: Any) -> dict[str, Any]:
    """A batch review as a steward's tools emit it: times as UTC text, the manifest without the fields
    withheld from stewards (named in ``withheld``), and the hash recomputed here over the manifest as
    received (withheld fields included) in ``recomputed_manifest_sha256``, to compare with
    ``status.manifest_sha256``."""
    from protocol import manifest_digest
    from protocol.manifest import withheld_from_stewards
    from protocol.timeutil import json_with_utc_times

    data: dict[str, Any] = json_with_utc_times(review)
    withheld = withheld_from_stewards(review.manifest)
    for name in withheld:
        del data["manifest"][name]
    data["withheld"] = [f"manifest.{name}" for name in withheld]
    data["recomputed_manifest_sha256"] = manifest_digest(review.manifest)
    return data
