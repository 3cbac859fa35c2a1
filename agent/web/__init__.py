"""The local pages: the employee's (served by the agent) and the steward's review page, on 127.0.0.1."""

from kit.web.server import PageServer, Request, Response

__all__ = ["PageServer", "Request", "Response"]
