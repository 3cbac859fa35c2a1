"""The local pages' guard, after Jupyter's: a per-session token, loopback Host/Origin checks, CSRF, headers.

token      random per server start (``secrets.token_urlsafe``); accepted once in ``?token=``, then kept
           in an HttpOnly, SameSite=Strict cookie named after the port, and answered with a page that
           forwards to the URL without it (a 303 would lose the cookie when the navigation started in
           the tray or a file://), so it never stays in history or a Referer
Host       must be ``127.0.0.1:PORT`` or ``localhost:PORT``: a DNS-rebinding page has its own name
Origin     every state change is a POST whose Origin (or, lacking it, Referer) is this server, and
           whose form carries the CSRF token. SameSite does not separate ports of one host (another
           local server on 127.0.0.1 is the same *site*), so these two checks are what stops it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from protocol import domains

CSRF_FIELD = "csrf"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


class SessionGuard:
    """Everything the server checks about a request before it reaches a page."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token or secrets.token_urlsafe(32)
        self.cookie_name = f"consentry-session-{port}"
        # The session cookie is not the token itself: a stolen cookie value cannot open a new session URL.
        self._session = hmac.new(self.token.encode(), domains.PAGE_SESSION_V1, hashlib.sha256).hexdigest()
        self.csrf_token = hmac.new(self.token.encode(), domains.PAGE_CSRF_V1, hashlib.sha256).hexdigest()
        self.origins = tuple(f"http://{name}:{port}" for name in LOOPBACK_NAMES)

    def host_ok(self, host: str | None) -> bool:
        return host is not None and host.strip().lower() in (f"{name}:{self.port}" for name in LOOPBACK_NAMES)

    def token_ok(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def set_cookie_header(self) -> str:
        return f"{self.cookie_name}={self._session}; HttpOnly; SameSite=Strict; Path=/"

    def session_ok(self, cookie_header: str | None) -> bool:
        if not cookie_header:
            return False
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except CookieError:
            return False
        morsel = jar.get(self.cookie_name)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self._session.encode())

    def same_origin(self, origin: str | None, referer: str | None) -> bool:
        """The POST came from a page of this server (Origin, or Referer when a browser sends no Origin)."""
        if origin is not None:
            return origin.strip().lower() in self.origins
        if referer is None:
            return False  # neither: not a browser form of ours, so refuse (fail closed)
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() in self.origins

    def csrf_ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.csrf_token.encode())


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
