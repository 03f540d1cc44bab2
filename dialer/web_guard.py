"""What keeps `dialer serve` standing when a LAN can reach it (SPEC 11, "Safe to expose on a
LAN"): login throttling, security headers, upload retention, and the fingerprint that binds a
launch to the check the user actually read.

Nothing here knows about pages; `dialer.web` wires it in.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

MIN_TOKEN_CHARS = 24
SMALL_BODY = 64 * 1024  # every request but an authenticated upload, login included
# What every response carries, errors, downloads and the event stream included.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}\.(csv|xlsx)$")  # only what the server itself wrote
UPLOAD_KEEP_SECONDS = 7 * 24 * 3600
UPLOADS_MAX_BYTES = 1024**3
UPLOADS_MAX_FILES = 1000


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: runs for every response the app sends, errors and streams too."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value


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

    Only failures cost: the right token from an unthrottled client always gets in. A throttled
    client is refused before its token is compared, so guessing learns nothing while it waits.
    The overall bucket bounds a guesser with many addresses; it can delay the real user by
    seconds, which is the price of that bound. IPv6 clients count per /64 (one machine can
    hold a whole /64).
    """

    def __init__(
        self,
        per_client: tuple[float, float] = (5, 1 / 6),  # 5 at once, then 10 a minute
        overall: tuple[float, float] = (30, 1.0),  # 30 at once, then 60 a minute
        max_clients: int = 10_000,
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


def too_many_logins(seconds: float) -> web.HTTPTooManyRequests:
    wait = max(1, math.ceil(seconds))
    return web.HTTPTooManyRequests(
        text=f"Too many wrong tokens: try again in {wait} seconds.",
        headers={"Retry-After": str(wait)},
    )


def fingerprint(paths: Iterable[Path]) -> dict[str, str]:
    """Path -> SHA-256 of its content ("missing" if unreadable). Blocking: run in a thread."""
    found: dict[str, str] = {}
    for path in paths:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1024 * 1024):
                    digest.update(chunk)
            found[str(path)] = digest.hexdigest()
        except OSError:
            found[str(path)] = "missing"
    return found


def prune_uploads(
    folder: Path,
    in_use: set[Path],
    *,
    now: float | None = None,
) -> list[Path]:
    """Delete uploads older than `keep_seconds`, then the oldest until the rest fit the caps.

    Oldest first rather than refusing new sheets: a forgotten week-old upload must not stop
    today's check, and a check whose sheet is gone cannot be launched (its fingerprint no
    longer matches), so nobody is called from a sheet that was deleted. Files in use (a check
    under way, a run calling) are never deleted. Blocking: run in a thread.
    """
    now = time.time() if now is None else now
    keep_seconds, max_bytes, max_files = UPLOAD_KEEP_SECONDS, UPLOADS_MAX_BYTES, UPLOADS_MAX_FILES
    files: list[tuple[float, int, Path]] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for path in entries:
        if not UPLOAD_NAME.match(path.name):
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, path))
    files.sort()
    deleted: list[Path] = []
    total = sum(size for _, size, _ in files)
    count = len(files)
    for mtime, size, path in files:
        too_old = now - mtime > keep_seconds
        if path in in_use or not (too_old or total > max_bytes or count > max_files):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue
        deleted.append(path)
        total -= size
        count -= 1
    return deleted
