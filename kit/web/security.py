"""The local pages' guard: who may connect, the link token, sessions that expire, Host/Origin, CSRF, headers.

peer       every connection must come from a program of the serving user's own account
           (kit.web.peer, checked by the server once per connection). This is what makes a leaked
           secret useless to another local user: browsers send a host's cookies to every port of it,
           so another account's server on 127.0.0.1 can collect the cookie; a link can show up in a
           process list or a Referer. None of them lets that account's programs in.
token      random per server start (``secrets.token_urlsafe``), kept in a 0600 file (kit.page_link)
           and handed to a browser only through a 0600 file it opens. ``?token=`` starts a session: an
           HttpOnly, SameSite=Strict cookie named after the port, set by a page that forwards to the
           URL without the token (a 303 would lose the cookie when the navigation started in the
           tray or a file://), so the token never stays in history or a Referer.
session    the cookie holds a random session id, new at each ``?token=``; the server keeps only a MAC
           of it. A session ends after ``IDLE`` without a request and ``ABSOLUTE`` after it started,
           whatever happens; then the page says how to open it again.
Host       must be ``127.0.0.1:PORT`` or ``localhost:PORT``: a DNS-rebinding page has its own name
Origin     every state change is a POST whose Origin (or, lacking it, Referer) is this server, whose
           Sec-Fetch-Site (when the browser sends one) is same-origin, and whose form carries the
           session's CSRF token. SameSite does not separate ports of one host (another local server
           on 127.0.0.1 is the same *site*), so these checks are what stops a page on another port
           from acting through the employee's own browser. A GET from another origin is served only
           as a top-level navigation (never as a sub-resource a foreign page embeds).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from protocol import domains

CSRF_FIELD = "csrf"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
IDLE = timedelta(minutes=30)  # a session unused this long ends
ABSOLUTE = timedelta(hours=8)  # and none lives longer than a working day
MAX_SESSIONS = 32  # the oldest ends first; only the user's own programs can start one


@dataclass
class Session:
    csrf_token: str
    started: float
    last_used: float


class SessionGuard:
    """Everything the server checks about a request before it reaches a page."""

    def __init__(
        self,
        port: int,
        token: str | None = None,
        *,
        idle: timedelta = IDLE,
        absolute: timedelta = ABSOLUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.token = token or secrets.token_urlsafe(32)
        self.cookie_name = f"consentry-session-{port}"
        self.origins = tuple(f"http://{name}:{port}" for name in LOOPBACK_NAMES)
        self.idle = idle
        self.absolute = absolute
        self._clock = clock
        self._sessions: dict[str, Session] = {}  # MAC of the session id -> session (the id itself is not kept)
        self._lock = threading.Lock()

    def host_ok(self, host: str | None) -> bool:
        return host is not None and host.strip().lower() in (f"{name}:{self.port}" for name in LOOPBACK_NAMES)

    def token_ok(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    # -- sessions ----------------------------------------------------------------------------------

    def start_session(self) -> str:
        """A new session; returns its Set-Cookie header value."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        csrf = hmac.new(session_id.encode(), domains.PAGE_CSRF_V1, hashlib.sha256).hexdigest()
        with self._lock:
            self._expire(now)
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda key: self._sessions[key].started)
                del self._sessions[oldest]
            self._sessions[_key(session_id)] = Session(csrf, now, now)
        return f"{self.cookie_name}={session_id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={int(self.absolute.total_seconds())}"

    def session(self, cookie_header: str | None, *, touch: bool = True) -> Session | None:
        """The live session this request's cookie names (marked used, if ``touch``); None if none or expired."""
        if not cookie_header:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except CookieError:
            return None
        morsel = jar.get(self.cookie_name)
        if morsel is None:
            return None
        now = self._clock()
        with self._lock:
            self._expire(now)
            found = self._sessions.get(_key(morsel.value))
            if found is not None and touch:
                found.last_used = now
            return found

    def _expire(self, now: float) -> None:
        for key, s in list(self._sessions.items()):
            if now - s.last_used >= self.idle.total_seconds() or now - s.started >= self.absolute.total_seconds():
                del self._sessions[key]

    # -- where a request came from ------------------------------------------------------------------

    def same_origin(self, origin: str | None, referer: str | None) -> bool:
        """The POST came from a page of this server (Origin, or Referer when a browser sends no Origin)."""
        if origin is not None:
            return origin.strip().lower() in self.origins
        if referer is None:
            return False  # neither: not a browser form of ours, so refuse (fail closed)
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() in self.origins

    @staticmethod
    def fetch_ok(method: str, site: str | None, mode: str | None) -> bool:
        """Fetch metadata, when the browser sends it: a POST only from this origin; a GET from elsewhere
        only as a navigation (a link the employee follows), never fetched or embedded by a foreign page."""
        if site is None:
            return True  # an older browser or a program: the other checks still apply
        site = site.strip().lower()
        if method == "POST":
            return site == "same-origin"
        return site in ("same-origin", "none") or (mode or "").strip().lower() == "navigate"

    @staticmethod
    def csrf_ok(session: Session, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), session.csrf_token.encode())


def _key(session_id: str) -> str:
    return hmac.new(session_id.encode(), domains.PAGE_SESSION_V1, hashlib.sha256).hexdigest()


def describe(lifetime: timedelta) -> str:
    """``30 minutes``, ``8 hours``: for the sentence that says why a session ended."""
    minutes = int(lifetime.total_seconds() // 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def security_headers(nonce: str) -> dict[str, str]:
    """No third-party anything: only this server, inline style/script with this response's nonce."""
    csp = (
        "default-src 'none'; "
        f"style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on our own forms.
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
