"""A small loopback HTTP server for the local pages (standard library only), guarded by SessionGuard.

The server does the checks every page needs (the peer's user, Host, token and session cookie, fetch
metadata, Origin and CSRF on POST, body size, headers) and hands a parsed ``Request`` to a
``PageApp``; pages never see a request that failed them. It binds 127.0.0.1 only. Nothing it logs
contains the token or a query string.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from kit.web.peer import PeerOwners, peer_owners, same_user
from kit.web.security import CSRF_FIELD, SessionGuard, describe, security_headers
from kit.web.templates import error_page, moving_page

log = logging.getLogger("consentry.page")

LOOPBACK = "127.0.0.1"
MAX_BODY = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
STOP_POLL_SECONDS = 0.1
_SAFE_PATH = re.compile(r"^/(?:[A-Za-z0-9_-]+/?)*$")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, list[str]] = field(default_factory=dict)
    csrf: str = ""  # for the page to put in its forms
    nonce: str = ""  # for the page's inline <style>/<script>

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    location: str | None = None

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status=status, body=text.encode("utf-8"))

    @classmethod
    def json(cls, data: object, status: int = 200) -> Response:
        return cls(status=status, body=json.dumps(data).encode("utf-8"), content_type="application/json")

    @classmethod
    def redirect(cls, path: str, **params: str) -> Response:
        """303 See Other after a POST, so a reload never repeats the action."""
        target = path + ("?" + urlencode(params) if params else "")
        return cls(status=303, location=target)


class PageApp(Protocol):
    title: str

    def handle(self, request: Request) -> Response: ...


STATE_PATH = "/state"  # an open page's poll (kit/ui.html "follow"): GET, JSON, does not count as use
EMPLOYEE_REOPEN = "Open it again from the Consentry tray icon, or with the command: consentry page"


class PageServer:
    """One page app on ``http://127.0.0.1:PORT/``; ``start()`` serves in a thread until ``stop()``.

    ``owners`` tells who owns a connection's other end (default: this OS's backend, which raises
    ``PeerCheckUnavailable`` where there is none, so no page starts unguarded). ``reopen`` is the
    sentence that tells the person how to get a new session.
    """

    def __init__(
        self,
        app: PageApp,
        *,
        port: int = 0,
        token: str | None = None,
        owners: PeerOwners | None = None,
        reopen: str = EMPLOYEE_REOPEN,
        guard: Callable[[int], SessionGuard] | None = None,
    ) -> None:
        self.app = app
        self.owners = owners if owners is not None else peer_owners()
        self.reopen = reopen
        self._httpd = _Server((LOOPBACK, port), _Handler)
        self._httpd.page = self
        self.port = int(self._httpd.server_address[1])
        self.guard = guard(self.port) if guard is not None else SessionGuard(self.port, token)
        self._thread: threading.Thread | None = None
        self._warned = False

    def note_refused_peer(self) -> None:
        """Log (once per server, so it cannot fill the log) that another account's program was turned away."""
        if not self._warned:
            self._warned = True
            log.warning("refused a connection to the local page from a program of another user of this computer")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    @property
    def token(self) -> str:
        return self.guard.token

    def start(self) -> PageServer:
        # serve_forever notices shutdown() only between polls: a short poll lets the agent exit promptly.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(STOP_POLL_SECONDS,), name="consentry-page", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5.0)
        self._httpd.server_close()

    def __enter__(self) -> PageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    page: PageServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "consentry-page"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # The default logs the request line, which may carry ?token=; log nothing from the request.
        return

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_HEAD(self) -> None:  # noqa: N802
        self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "Only GET and POST are served here.")

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle plus the client's delayed ACK
        # holds every answer on a kept-alive connection back by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # One check per connection, before any request on it is read: its peer is a socket of our own user.
        self.peer_ok = same_user(self.connection, self.server.page.owners)

    def _dispatch(self, method: str) -> None:
        page = self.server.page
        guard = page.guard
        if not self.peer_ok:
            page.note_refused_peer()
            self._refuse(
                HTTPStatus.FORBIDDEN,
                "This page belongs to another user of this computer; it answers only to that user's own programs.",
            )
            return
        if not guard.host_ok(self.headers.get("Host")):
            # DNS rebinding: a page under another name that resolves to 127.0.0.1 gets nothing.
            self._refuse(HTTPStatus.FORBIDDEN, "This page answers only to 127.0.0.1 and localhost.")
            return
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        token = query.pop("token", None)
        if not guard.fetch_ok(method, self.headers.get("Sec-Fetch-Site"), self.headers.get("Sec-Fetch-Mode")):
            self._refuse(HTTPStatus.FORBIDDEN, "Refused: the request did not come from this page.")
            return
        if method == "GET" and token is not None:
            if not guard.token_ok(token):
                self._refuse(HTTPStatus.FORBIDDEN, "This link is not valid (any more). Open the page again.")
                return
            # Accept the token once, keep it in the cookie, and drop it from the address bar. Not a 303:
            # a browser treats a redirect at the end of a navigation that came from elsewhere (the
            # tray, a file://) as cross-site and would withhold the SameSite=Strict cookie; a refresh
            # from this page is same-site.
            path = parts.path if _SAFE_PATH.match(parts.path) else "/"  # never "//host" or "/\\host"
            target = path + ("?" + urlencode(query) if query else "")
            nonce = secrets.token_urlsafe(16)
            self._send(Response.html(moving_page(target)), nonce=nonce, cookie=guard.start_session())
            return
        # An open page asking whether what it shows changed is not the person using it: an unattended page
        # must not keep its session alive.
        session = guard.session(self.headers.get("Cookie"), touch=parts.path != STATE_PATH)
        if session is None:
            self._refuse(
                HTTPStatus.FORBIDDEN,
                f"You have no open session on this page (a session ends after {describe(guard.idle)} without "
                f"use, and after {describe(guard.absolute)} in all). {page.reopen}.",
            )
            return
        nonce = secrets.token_urlsafe(16)
        form: dict[str, list[str]] = {}
        if method == "POST":
            if not guard.same_origin(self.headers.get("Origin"), self.headers.get("Referer")):
                self._refuse(HTTPStatus.FORBIDDEN, "Refused: the request did not come from this page.")
                return
            body = self._read_form()
            if body is None:
                return
            form = body
            values = form.get(CSRF_FIELD)
            if not guard.csrf_ok(session, values[0] if values else None):
                self._refuse(HTTPStatus.FORBIDDEN, "Refused: the form has expired. Reload the page and try again.")
                return
        request = Request(method, parts.path, query, form, csrf=session.csrf_token, nonce=nonce)
        try:
            response = page.app.handle(request)
        except Exception as exc:  # a bug must show a plain message, never a traceback
            log.error("page error on %s: %s", parts.path.split("/")[1] or "/", type(exc).__name__)
            response = Response.html(
                error_page(page.app.title, "Something went wrong; nothing was changed. Try again.", nonce), 500
            )
        self._send(response, nonce=nonce)

    def _read_form(self) -> dict[str, list[str]] | None:
        if self.headers.get_content_type() != FORM_TYPE:
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Refused: not a form submission.")
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "Refused: the request has no length.")
            return None
        if length < 0 or length > MAX_BODY:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Refused: the form is too large.")
            return None
        raw = self.rfile.read(length)
        try:
            return parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            self._refuse(HTTPStatus.BAD_REQUEST, "Refused: the form could not be read.")
            return None

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        nonce = secrets.token_urlsafe(16)
        # A refused request's body may be unread: end the connection, and say so, so no client reuses it.
        self._send(Response.html(error_page("Consentry", message, nonce), status), nonce=nonce, close=True)

    def _send(self, response: Response, *, nonce: str = "", cookie: str | None = None, close: bool = False) -> None:
        self.send_response(response.status)
        if close:
            self.send_header("Connection", "close")  # also sets self.close_connection
        for name, value in security_headers(nonce or secrets.token_urlsafe(16)).items():
            self.send_header(name, value)
        if response.location is not None:
            self.send_header("Location", response.location)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
