"""The headers every response carries, errors, downloads and the event stream included."""

from __future__ import annotations

from aiohttp import web

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


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: runs for every response the app sends, errors and streams too."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
