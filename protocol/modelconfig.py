"""How every pydantic model that crosses a boundary is configured.

Frozen and ``extra="forbid"``: a field outside the schema is an error, never silently kept.

``BOUNDARY`` also defers building each model's validator to its first use, so a CLI command pays only
for the models it touches (read commands such as ``consentry status`` import no pydantic at all: the
vault reads its own data into plain dataclasses, see docs/architecture.md). ``WIRE`` does not:
the release and store models are used by networked commands and by the long-running store, and
FastAPI warns when it meets a deferred model as a request body.
"""

from pydantic import ConfigDict

BOUNDARY = ConfigDict(frozen=True, extra="forbid", defer_build=True)
WIRE = ConfigDict(frozen=True, extra="forbid")
