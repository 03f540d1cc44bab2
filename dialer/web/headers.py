"""The headers every response carries, errors, downloads and the event stream included, and
aiohttp's own 400s for a request it could not parse (a bad request line or header).

    app.on_response_prepare.append(security_headers)   # every routed response
    guard_parser_errors(app)                            # the ones no route or middleware sees
"""

from __future__ import annotations

import functools

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
    _add(response)


def _add(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value


class _GuardedRequest(web.Request):
    """A request whose response is guarded even when it never reached routing: aiohttp
    answers a request it cannot parse (bad request line, bad or oversized header) with its
    own 400, made without match info, so neither middlewares nor `on_response_prepare` run
    for it (aio-libs/aiohttp#6463). `_prepare_hook` is what every response's `prepare`
    calls; routed requests go on to the signal as before."""

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        if self._match_info is None:
            _add(response)
        await super()._prepare_hook(response)


def guard_parser_errors(app: web.Application) -> None:
    """Make `app`'s requests `_GuardedRequest`s. The request factory is aiohttp's own, only
    given our class: the runner (run_app's or a TestServer's) reads it when it starts."""
    app._make_request = functools.partial(app._make_request, _cls=_GuardedRequest)  # type: ignore[method-assign]
