"""How every pydantic model that crosses a boundary is configured.

Frozen and ``extra="forbid"`` (a field outside the schema is an error, never silently kept).
``defer_build``: a model's validator is built on first use rather than at import, so a CLI command
pays only for the models it touches (it must start in well under 150 ms).
"""

from pydantic import ConfigDict

BOUNDARY = ConfigDict(frozen=True, extra="forbid", defer_build=True)
