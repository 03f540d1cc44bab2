"""Who may use the page: the token rule, login with throttling, sessions, CSRF, and the
middleware that holds every page but the login form behind a session.

    auth = Auth(require_token(os.environ, DEFAULTS), DEFAULTS)
    public, uploads = frozenset({"/login"}), frozenset({"/dry-runs"})
    app = web.Application(middlewares=[auth.middleware(public, uploads)])

Only wrong tokens cost: the right token from an unthrottled client always gets in. A throttled
client is refused before its token is compared, so guessing learns nothing while it waits.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dialer.core.statuses import UsageError
from dialer.web.settings import DEFAULTS, Settings

TOKEN_ENV = "DIALER_UI_TOKEN"
SESSION_COOKIE = "dialer_session"


def require_token(environ: Mapping[str, str], settings: Settings = DEFAULTS) -> str:
    """The page's password from the environment; a weak one refuses to start the server: too
    short, holding whitespace (24 spaces, a pasted line break), or of too few different
    characters ("a" * 30) to be a secret on a LAN."""
    token = environ.get(TOKEN_ENV, "")
    weak = (
        len(token) < settings.min_token_chars
        or any(c.isspace() for c in token)
        or len(set(token)) < settings.min_token_distinct
    )
    if weak:
        raise UsageError(
            f"set {TOKEN_ENV} to a secret of at least {settings.min_token_chars} characters, no "
            f"spaces, at least {settings.min_token_distinct} of them different (it is what the "
            "page asks for), e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    return token


@dataclass(slots=True)
class Session:
    csrf: str
    expires: float
    # Not a secret: what the opt-out register's history names this browser by ("page,
    # session 3f9a12bc") until the page knows people (SPEC 13).
    label: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def who(self) -> str:
        """Who acts, for a history: the page, and which logged-in browser."""
        return f"page, session {self.label}"


SESSION_KEY = web.RequestKey("session", Session)


def session_of(request: web.Request) -> Session | None:
    """The session the middleware found for this request (None on public pages)."""
    return request.get(SESSION_KEY)


def check_csrf(request: web.Request, given: str) -> None:
    """403 unless `given` is this session's CSRF token."""
    session = session_of(request)
    if session is None or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise web.HTTPForbidden(text="bad or missing CSRF token: reload the page")


@dataclass(slots=True)
class Bucket:
    """A token bucket: `capacity` attempts at once, then one every `1 / rate` seconds."""

    capacity: float
    rate: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until one attempt is allowed (0: allowed now)."""
        self.refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


class LoginThrottle:
    """Failed logins, throttled per client and overall.

    The overall bucket bounds a guesser with many addresses; it can delay the real user by
    seconds, which is the price of that bound. IPv6 clients count per /64 (one machine can
    hold a whole /64).
    """

    def __init__(
        self,
        per_client: tuple[float, float] = DEFAULTS.login_per_client,
        overall: tuple[float, float] = DEFAULTS.login_overall,
        max_clients: int = DEFAULTS.login_clients_kept,
    ) -> None:
        self.per_client = per_client
        self.overall = Bucket(*overall, tokens=overall[0], stamp=time.monotonic())
        self.clients: dict[str, Bucket] = {}
        self.max_clients = max_clients

    @staticmethod
    def client_key(remote: str | None) -> str:
        try:
            address = ipaddress.ip_address(remote or "")
        except ValueError:
            return remote or "?"
        if address.version == 6:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds this client must wait before its next attempt (0: it may try now)."""
        now = time.monotonic() if now is None else now
        bucket = self.clients.get(client)
        mine = bucket.wait(now) if bucket else 0.0
        return max(mine, self.overall.wait(now))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        bucket = self.clients.get(client)
        if bucket is None:
            self._forget_some(now)
            capacity, rate = self.per_client
            bucket = self.clients[client] = Bucket(capacity, rate, capacity, now)
        for b in (bucket, self.overall):
            b.refill(now)
            b.tokens = max(0.0, b.tokens - 1)

    def _forget_some(self, now: float) -> None:
        """Bounded memory: forget clients whose bucket has refilled, then the oldest."""
        if len(self.clients) < self.max_clients:
            return
        for key, bucket in list(self.clients.items()):
            bucket.refill(now)
            if bucket.tokens >= bucket.capacity:
                del self.clients[key]
        while len(self.clients) >= self.max_clients:
            del self.clients[next(iter(self.clients))]


class Auth:
    """The token, the live sessions and the login throttle of one server."""

    def __init__(
        self,
        token: str,
        settings: Settings = DEFAULTS,
        *,
        https: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.settings = settings
        self.https = https  # behind an HTTPS proxy: the session cookie is Secure
        self.clock = clock
        self.sessions: dict[str, Session] = {}
        self.throttle = LoginThrottle(
            settings.login_per_client, settings.login_overall, settings.login_clients_kept
        )

    def login_wait(self, remote: str | None) -> int:
        """Whole seconds this client must wait before it may try a token (0: it may now)."""
        wait = self.throttle.retry_after(self.throttle.client_key(remote))
        return max(1, math.ceil(wait)) if wait else 0

    def log_in(self, remote: str | None, given: str) -> str | None:
        """A new session id for the right token; None (and one throttled failure) otherwise."""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            self.throttle.failed(self.throttle.client_key(remote))
            return None
        now = self.clock()
        self.sessions = {k: v for k, v in self.sessions.items() if v.expires > now}
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(secrets.token_urlsafe(32), now + self.settings.session_seconds)
        return sid

    def set_cookie(self, response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            httponly=True,
            samesite="Strict",
            secure=self.https,
            max_age=int(self.settings.session_seconds),
            path="/",
        )

    def log_out(self, request: web.Request, response: web.StreamResponse) -> None:
        self.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response.del_cookie(SESSION_COOKIE, path="/")

    def session(self, request: web.Request) -> Session | None:
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None and session.expires < self.clock():
            return None
        return session

    def middleware(self, public: frozenset[str], uploads: frozenset[str]) -> Any:
        """Every path but `public` needs a live session; bodies are judged by their declared
        size before a byte of them is read, and only a logged-in POST to one of `uploads` may
        be big."""
        big = self.settings.upload_limit + self.settings.upload_form_slack

        @web.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            session = self.session(request)
            uploading = session is not None and request.method == "POST" and request.path in uploads
            limit = big if uploading else self.settings.small_body
            if (request.content_length or 0) > limit:
                raise web.HTTPRequestEntityTooLarge(limit, request.content_length or 0)
            if request.path not in public:
                if session is None:
                    if request.method == "GET":
                        raise web.HTTPSeeOther("/login")
                    raise web.HTTPForbidden(text="log in first")
                request[SESSION_KEY] = session
            return await handler(request)

        return guard
