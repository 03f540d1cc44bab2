"""A logged-in user who means harm, and aiohttp's own edges (issue 18, items 12 to 15),
through the page's real routes: a real `Server`, real children, real files, the package's
fake Tabbly or a small aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp.test_utils import TestClient

from dialer import web
from dialer.web.headers import SECURITY_HEADERS
from tests.test_web_hardening import BOUND, _run


async def _raw_answer(port: int, request: bytes) -> tuple[int, dict[str, str]]:
    """Send raw bytes; the status and headers of the answer (names lower-cased)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        status = int((await asyncio.wait_for(reader.readline(), BOUND)).split()[1])
        headers: dict[str, str] = {}
        while (line := await asyncio.wait_for(reader.readline(), BOUND)).strip():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# ---- 15 (d): aiohttp's own 400s ----


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",  # no request line
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",  # a header without a colon
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",  # too long
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",  # a NUL in the target
    ],
    ids=["request-line", "header", "long-header", "nul"],
)
def test_aiohttps_own_400s_carry_the_security_headers(tmp_path, request_bytes):
    async def body(client: TestClient, server: web.Server) -> None:
        status, headers = await _raw_answer(client.port, request_bytes)
        assert 400 <= status < 500, status
        for name, value in SECURITY_HEADERS.items():
            assert headers.get(name.lower()) == value, (name, status, headers)

    _run(tmp_path, body)
