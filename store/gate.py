"""The store's request gate (ASGI middleware): authenticate from the headers before reading a body, then stream it.

Order for every request, each step answering at once when it refuses (nothing is read past it):

1. the route's ``Rule``: who may call it and how large its body may be (unknown routes: no body);
2. signed routes: ``Authenticator.claim`` then ``.principal``, from the headers alone (401/403) — an unknown or stale
   sender never gets the store to read, let alone parse, a byte of its body;
3. a declared ``Content-Length`` over the route's limit: 413;
4. a body over ``large_body_bytes`` needs one of ``max_large_bodies`` slots, else 503 + ``Retry-After``
   (memory is bounded by slots x limit, instead of queueing);
5. the body streams in, counted (413 the moment it passes the limit) and hashed;
6. signed routes: ``Authenticator.verify`` checks the signature over the digest and spends the nonce;
   the verified ``Principal`` goes to the route in ``scope["consentry.principal"]``.

The device lookup of step 2 and all of step 6 touch the database, so they run in a worker thread: the
event loop (and ``/v1/health``) never waits on them.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from starlette.responses import JSONResponse
from starlette.routing import Match, Router

from protocol.store_errors import BadRequest, PayloadTooLarge, StoreError, Unavailable
from store.auth import Authenticator, AuthHeaders, Principal, Role
from store.settings import StoreSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PRINCIPAL_KEY = "consentry.principal"
RETRY_AFTER_SECONDS = 2


@dataclass(frozen=True)
class Rule:
    """Who may call a route (``()``: anyone) and the most body bytes it takes (0: none)."""

    roles: tuple[Role, ...]
    max_body: int


NO_BODY_PUBLIC = Rule((), 0)


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": message}}, headers=dict(headers or {})
    )


def request_target(scope: Scope) -> str:
    """The signed target: the raw path plus ``?query`` when there is one (what the client signed)."""
    path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string") or b""
    return path.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")


class RequestGate:
    """ASGI middleware applying ``rules`` (by route name) to every HTTP request before the app sees it."""

    def __init__(
        self, app: ASGIApp, *, router: Router, rules: Mapping[str, Rule], auth: Authenticator, settings: StoreSettings
    ) -> None:
        self.app = app
        self._router = router
        self._rules = rules
        self._auth = auth
        self._large = settings.large_body_bytes
        self._slots = settings.max_large_bodies
        self._in_use = 0  # large bodies being read or handled; one event loop, so no lock is needed

    def _rule(self, scope: Scope) -> Rule:
        for route in self._router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return self._rules.get(getattr(route, "name", ""), NO_BODY_PUBLIC)
        return NO_BODY_PUBLIC  # 404 or 405: the app answers without a body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot = _Slot()
        try:
            try:
                body = await self._admit(self._rule(scope), scope, receive, slot)
            except StoreError as exc:
                # Connection: close makes the server drop the connection instead of reading (and discarding)
                # the rest of a refused body to keep it alive: a refused sender costs no more CPU either.
                headers = {"Connection": "close"}
                if isinstance(exc, Unavailable):
                    headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
                await error_response(exc.status, exc.code, exc.message, headers)(scope, receive, send)
                return
            if body is not None:  # None: the client went away
                await self.app(scope, _replay(body, receive), send)
        finally:
            if slot.held:
                self._in_use -= 1

    async def _admit(self, rule: Rule, scope: Scope, receive: Receive, slot: _Slot) -> deque[bytes] | None:
        """Steps 2-6 of the module docstring: the body, once the sender and its size are acceptable."""
        headers = AuthHeaders.from_asgi(scope.get("headers") or [])
        principal: Principal | None = None
        if rule.roles:
            role, kid = self._auth.claim(headers, rule.roles)  # no I/O: most hostile senders stop here
            principal = await self._principal(role, kid)
        declared = _content_length(scope)
        if declared is not None and declared > rule.max_body:
            raise PayloadTooLarge("body_too_large", f"this endpoint takes at most {rule.max_body} bytes")
        if declared is not None and declared > self._large:
            self._take(slot)
        read = await self._read(rule, receive, slot)
        if read is None:
            return None
        body, digest = read
        if principal is not None:
            target = request_target(scope)
            await to_thread.run_sync(self._auth.verify, principal, headers, scope["method"], target, digest)
            scope[PRINCIPAL_KEY] = principal
        return body

    async def _principal(self, role: Role, kid: str) -> Principal:
        if role == "steward":
            return self._auth.principal(role, kid)  # from the store's config: no I/O
        return await to_thread.run_sync(self._auth.principal, role, kid)

    def _take(self, slot: _Slot) -> None:
        if self._in_use >= self._slots:
            raise Unavailable("busy", "the store is busy receiving other large uploads; retry shortly")
        self._in_use += 1
        slot.held = True

    async def _read(self, rule: Rule, receive: Receive, slot: _Slot) -> tuple[deque[bytes], str] | None:
        """The body's chunks and SHA-256 (None if the client went away), refused the moment it passes the limit.

        Kept as the chunks received (no joined copy) and hashed as they arrive: a body refused for its
        signature never costs more than its own size.
        """
        chunks: deque[bytes] = deque()
        digest = hashlib.sha256()
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > rule.max_body:
                raise PayloadTooLarge("body_too_large", f"this endpoint takes at most {rule.max_body} bytes")
            if total > self._large and not slot.held:
                self._take(slot)  # a chunked body grew large: it needs a slot now
            if chunk:
                chunks.append(chunk)
                digest.update(chunk)
            if not message.get("more_body", False):
                return chunks, digest.hexdigest()


class _Slot:
    """Whether this request holds one of the large-body slots (released when its response is done)."""

    held = False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name.lower() == b"content-length":
            if not value.isdigit() or len(value) > 15:
                raise BadRequest("malformed_request", "invalid Content-Length")
            return int(value)
    return None


def _replay(chunks: deque[bytes], receive: Receive) -> Receive:
    """A receive() that hands the app the chunks already read (each let go once taken), then defers to the
    server's receive (which reports the client's disconnect)."""
    if not chunks:
        chunks.append(b"")  # an empty body is still one http.request message

    async def replay() -> Message:
        if chunks:
            body = chunks.popleft()
            return {"type": "http.request", "body": body, "more_body": bool(chunks)}
        return await receive()

    return replay
