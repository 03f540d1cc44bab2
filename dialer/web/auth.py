"""Who may use the page: people by name and password (or the token while nobody is one),
login with throttling, sessions, CSRF, and the middleware that holds every page but the login
form behind a session.

    auth = Auth(token, DEFAULTS, people=People(root / "state"))
    public, uploads = frozenset({"/login"}), frozenset({"/dry-runs"})
    app = web.Application(middlewares=[auth.middleware(public, uploads)])

Only wrong passwords cost: the right one from an unthrottled client always gets in. A throttled
client is refused before its password is compared, so guessing learns nothing while it waits.
A session holds a name and the epoch of that person's password; every request reads the person
again (one small SQLite read), so a new role applies at once and a new password or a removal
ends the session at once. A session ends after `session_seconds` without a request.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from dialer.core.statuses import UsageError
from dialer.team.people import TOKEN_NAME, People, Person
from dialer.team.roles import Role
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


# The one person the token is, while nobody else is one (SPEC 13).
TOKEN_PERSON = Person(TOKEN_NAME, Role.ADMIN, 0, "")


@dataclass(slots=True)
class Session:
    csrf: str
    expires: float  # moved on by every request: sessions end when idle
    name: str = TOKEN_NAME
    epoch: int = 0  # of the person's password when the session was made
    created: str = ""  # of the person: a person removed and added again is someone new
    role: Role = Role.ADMIN  # read again from the people store on every request

    @property
    def who(self) -> str:
        """Who acts, for a history and the audit trail: the person's name ("token")."""
        return self.name


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

    def refund(self, client: str, now: float | None = None) -> None:
        """Give back the attempt `failed` charged ahead of a login that proved right."""
        now = time.monotonic() if now is None else now
        for b in (self.clients.get(client), self.overall):
            if b is not None:
                b.refill(now)
                b.tokens = min(b.capacity, b.tokens + 1)

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
    """The token, the people store, the live sessions and the login throttle of one server.
    `token` may be "" (nobody logs in by token); `people` None is a page without people."""

    def __init__(
        self,
        token: str,
        settings: Settings = DEFAULTS,
        *,
        people: People | None = None,
        https: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.people = people
        self.settings = settings
        self.https = https  # behind an HTTPS proxy: the session cookie is Secure
        self.clock = clock
        self.sessions: dict[str, Session] = {}
        self.throttle = LoginThrottle(
            settings.login_per_client, settings.login_overall, settings.login_clients_kept
        )

    def has_people(self) -> bool:
        """Whether anyone is a person yet (then the token no longer logs in)."""
        return self.people is not None and self.people.count() > 0

    def login_wait(self, remote: str | None) -> int:
        """Whole seconds this client must wait before it may try a password (0: it may now)."""
        wait = self.throttle.retry_after(self.throttle.client_key(remote))
        return max(1, math.ceil(wait)) if wait else 0

    def check(self, name: str, password: str) -> Person | None:
        """The person `name` if `password` is theirs; the token's person for the token while
        nobody is a person; None otherwise. Judges, never throttles (see `charge`)."""
        if self.has_people():
            assert self.people is not None
            return None if name == TOKEN_NAME else self.people.check_password(name, password)
        right = bool(self.token) and hmac.compare_digest(password.encode(), self.token.encode())
        return TOKEN_PERSON if name == TOKEN_NAME and right else None

    def charge(self, remote: str | None) -> None:
        """One login attempt from `remote`, counted as wrong before it is judged: attempts
        judged at once (a password's scrypt runs in a thread) are all counted. `refund` it
        when it proves right, so only wrong ones cost."""
        self.throttle.failed(self.throttle.client_key(remote))

    def refund(self, remote: str | None) -> None:
        self.throttle.refund(self.throttle.client_key(remote))

    def log_in(self, person: Person) -> str:
        """A new session of `person`: its id (the cookie's value)."""
        now = self.clock()
        self.sessions = {k: v for k, v in self.sessions.items() if v.expires > now}
        # Bounded memory: one person logging in again and again (a script, a stolen
        # password) ends their own oldest sessions, never anyone else's.
        theirs = [k for k, v in self.sessions.items() if v.name == person.name]
        for old in theirs[: max(0, len(theirs) - self.settings.sessions_per_person + 1)]:
            del self.sessions[old]
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(
            secrets.token_urlsafe(32),
            now + self.settings.session_seconds,
            person.name,
            person.epoch,
            person.created,
            person.role,
        )
        return sid

    def set_cookie(self, response: web.StreamResponse, sid: str) -> None:
        """The session cookie, for as long as the browser is open: the server ends the
        session when it is idle, so the cookie itself has no end."""
        response.set_cookie(
            SESSION_COOKIE, sid, httponly=True, samesite="Strict", secure=self.https, path="/"
        )

    def log_out(self, request: web.Request, response: web.StreamResponse) -> None:
        self.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response.del_cookie(SESSION_COOKIE, path="/")

    def session(self, request: web.Request, *, active: bool = True) -> Session | None:
        """This request's live session, its role read again and (`active`: a person's
        request, not a page's open event stream) its end moved on; None (and the session
        dropped) once it is idle too long or its person changed password, was removed, or
        (the token's) once a person exists."""
        sid = request.cookies.get(SESSION_COOKIE, "")
        session = self.sessions.get(sid)
        if session is None:
            return None
        now = self.clock()
        if session.expires < now or not self._still_valid(session):
            self.sessions.pop(sid, None)
            return None
        if active:
            session.expires = now + self.settings.session_seconds
        return session

    def _still_valid(self, session: Session) -> bool:
        if session.name == TOKEN_NAME:
            return not self.has_people()
        person = self.people.get(session.name) if self.people is not None else None
        if person is None or (person.epoch, person.created) != (session.epoch, session.created):
            return False
        session.role = person.role
        return True

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


def from_elsewhere(request: web.Request) -> bool:
    """A form another site made this browser post. Logging in is the one POST before a
    session and its CSRF token: without this, a page elsewhere could log a visitor in as the
    attacker, and what they then did would be done, and audited, under the attacker's name.
    A current browser says where a request comes from in `Sec-Fetch-Site`; `Origin` is the
    fallback ("null" says nothing: this page's own no-referrer policy makes Chromium send it).
    A request with neither (curl, a script) is not refused: no other site's form makes one."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() != request.host.lower()
