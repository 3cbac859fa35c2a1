"""Every privacy check in plain words with its figure, never a bare "pass": what a steward reads.

A manifest's checks carry a detail only when they fail ("3 record(s) ..."); a passed check means no
record failed it, so its figure is "0 of N records". The workstation ran the checks; the figure says
over how many records.
"""

from __future__ import annotations

from protocol.manifest import BatchManifest
from protocol.privacy import PrivacyCheck

WHAT = {
    "schema": "records outside the window schema (a field the schema does not have)",
    "no_free_text": "records with a string outside the closed vocabularies (free text)",
    "consent_coverage": "records not covered by a consent receipt of their category granted before them",
    "counts_match": "per-category record counts compared with the manifest's",
    "app_tokens_rekeyed": "workstation app tokens surviving into the batch (each batch has fresh ones)",
}


def describe(check: PrivacyCheck, manifest: BatchManifest) -> str:
    """``check`` as one line: its verdict, what was checked and the figure."""
    total = sum(manifest.record_counts.values())
    what = WHAT.get(check.name, check.name)
    if check.name == "counts_match":
        counts = ", ".join(f"{c} {n}" for c, n in sorted(manifest.record_counts.items(), key=lambda kv: str(kv[0])))
        figure = f"equal ({counts})" if check.passed else check.detail or "they differ"
        return f"{'passed' if check.passed else 'FAILED'}: {what}: {figure}"
    if check.name == "app_tokens_rekeyed":
        apps = sum(n for c, n in manifest.record_counts.items() if str(c) == "apps")
        figure = f"0 found in {apps} apps records" if check.passed else check.detail
        return f"{'passed' if check.passed else 'FAILED'}: {what}: {figure}"
    if check.passed:
        return f"passed: {what}: 0 of {total}"
    failed = check.detail.split(" ", 1)[0] if check.detail else "some"
    return f"FAILED: {what}: {failed} of {total}"
