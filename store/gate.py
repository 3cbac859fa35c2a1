"""The store's request gate (ASGI middleware): authenticate from the headers before reading a body, then stream it.

Order for every request, each step answering at once when it refuses (nothing is read past it):

1. the route's ``Rule``: who may call it and how large its body may be (unknown routes: no body);
2. signed routes: ``Authenticator.claim`` then ``.principal``, from the headers alone (401/403) — an unknown or stale
   sender never gets the store to read, let alone parse, a byte of its body; a key with
   ``max_requests_per_key`` requests in progress gets 503 ``key_busy`` (one known key id cannot take
   the store's capacity);
3. a declared ``Content-Length`` over the route's limit: 413;
4. a body over ``large_body_bytes`` needs one of ``max_large_bodies`` slots, at most one per key, else 503 +
   ``Retry-After`` (memory is bounded by slots x limit, instead of queueing);
5. the body streams in, counted (413 the moment it passes the limit) and hashed. Every byte held before
   its signature is checked counts against one budget for all requests (``unverified_body_bytes``; 503
   ``busy`` when spent), and the body must keep pace: after ``body_grace_seconds`` at least
   ``body_min_bytes_per_second``, and all of it within ``body_deadline_seconds``, else 408 (a trickling
   sender holds nothing for long);
6. signed routes: ``Authenticator.verify`` checks the signature over the digest and spends the nonce;
   the verified ``Principal`` goes to the route in ``scope["consentry.principal"]``, and its bytes leave
   the unverified budget.

Connections themselves (how many, how long a request head may take) are bounded below the app, in
``store.connections``.

The device lookup of step 2 and all of step 6 touch the database, so they run in a worker thread: the
event loop (and ``/v1/health``) never waits on them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from starlette.responses import JSONResponse
from starlette.routing import Match, Router

from protocol.store_errors import BadRequest, PayloadTooLarge, RequestTimeout, StoreError, Unavailable
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
        self._settings = settings
        self._large = settings.large_body_bytes
        self._slots = settings.max_large_bodies
        # One event loop, so none of these counters needs a lock.
        self._in_use = 0  # large bodies being read or handled
        self._large_by_key: dict[str, int] = {}
        self._by_key: dict[str, int] = {}  # requests in progress per claimed key
        self._unverified = 0  # body bytes held whose signature is not checked yet

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
            self._release(slot)

    def _release(self, slot: _Slot) -> None:
        if slot.held:
            self._in_use -= 1
            self._large_by_key[slot.key] -= 1
            if not self._large_by_key[slot.key]:
                del self._large_by_key[slot.key]
        self._unverified -= slot.unverified
        slot.unverified = 0
        if slot.counted:
            self._by_key[slot.key] -= 1
            if not self._by_key[slot.key]:
                del self._by_key[slot.key]
            slot.counted = False

    async def _admit(self, rule: Rule, scope: Scope, receive: Receive, slot: _Slot) -> deque[bytes] | None:
        """Steps 2-6 of the module docstring: the body, once the sender and its size are acceptable."""
        headers = AuthHeaders.from_asgi(scope.get("headers") or [])
        principal: Principal | None = None
        if rule.roles:
            role, kid = self._auth.claim(headers, rule.roles)  # no I/O: most hostile senders stop here
            self._count_key(f"{role}:{kid}", slot)
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
            self._unverified -= slot.unverified  # verified: no longer an unknown sender's bytes
            slot.unverified = 0
        return body

    def _count_key(self, key: str, slot: _Slot) -> None:
        if self._by_key.get(key, 0) >= self._settings.max_requests_per_key:
            raise Unavailable(
                "key_busy", f"this key already has {self._settings.max_requests_per_key} requests in progress; retry"
            )
        self._by_key[key] = self._by_key.get(key, 0) + 1
        slot.key, slot.counted = key, True

    async def _principal(self, role: Role, kid: str) -> Principal:
        if role == "steward":
            return self._auth.principal(role, kid)  # from the store's config: no I/O
        return await to_thread.run_sync(self._auth.principal, role, kid)

    def _take(self, slot: _Slot) -> None:
        if self._in_use >= self._slots:
            raise Unavailable("busy", "the store is busy receiving other large uploads; retry shortly")
        if slot.counted and self._large_by_key.get(slot.key, 0) >= 1:
            raise Unavailable("key_busy", "this key is already sending a large upload; retry when it is done")
        self._in_use += 1
        self._large_by_key[slot.key] = self._large_by_key.get(slot.key, 0) + 1
        slot.held = True

    def _hold_unverified(self, slot: _Slot, size: int) -> None:
        if self._unverified + size > self._settings.unverified_budget:
            raise Unavailable("busy", "the store is busy receiving other requests; retry shortly")
        self._unverified += size
        slot.unverified += size

    async def _read(self, rule: Rule, receive: Receive, slot: _Slot) -> tuple[deque[bytes], str] | None:
        """The body's chunks and SHA-256 (None if the client went away), refused the moment it passes the limit.

        Kept as the chunks received (no joined copy) and hashed as they arrive: a body refused for its
        signature never costs more than its own size.
        """
        chunks: deque[bytes] = deque()
        digest = hashlib.sha256()
        total = 0
        settings = self._settings
        started = time.monotonic()
        while True:
            # The next chunk is due when the bytes so far fall below the minimum rate, or at the deadline.
            due = min(
                settings.body_grace_seconds + total / settings.body_min_bytes_per_second,
                settings.body_deadline_seconds,
            )
            try:
                async with asyncio.timeout(max(due - (time.monotonic() - started), 0.001)):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    "body_too_slow",
                    f"the request body must arrive at {settings.body_min_bytes_per_second} bytes a second or more "
                    f"(after {settings.body_grace_seconds:g} s), all of it within {settings.body_deadline_seconds:g} s",
                ) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > rule.max_body:
                raise PayloadTooLarge("body_too_large", f"this endpoint takes at most {rule.max_body} bytes")
            if total > self._large and not slot.held:
                self._take(slot)  # a chunked body grew large: it needs a slot now
            if chunk:
                self._hold_unverified(slot, len(chunk))
                chunks.append(chunk)
                digest.update(chunk)
            if not message.get("more_body", False):
                return chunks, digest.hexdigest()


class _Slot:
    """What this request holds of the gate's limits (all released when its response is done)."""

    held = False  # one of the large-body slots
    key = ""  # the key it claims (signed routes)
    counted = False  # counted in that key's requests in progress
    unverified = 0  # body bytes held before the signature is checked


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
