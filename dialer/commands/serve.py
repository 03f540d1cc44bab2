"""`dialer serve`: its options; the page itself is `web/`'s, loaded when the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from dialer.commands.arguments import Subparsers, command_parser


def add_parser(subparsers: Subparsers) -> None:
    parser = command_parser(
        subparsers,
        "serve",
        "Serve the web page for marketing: upload, check, launch, watch, download.",
        "export DIALER_UI_TOKEN=\"$(python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(24))')\"\n"
        "  TABBLY_API_KEY=... dialer serve --port 8080",
        description="Serve the web page on which a sheet is uploaded, checked, launched, "
        "watched and its report downloaded. Needs DIALER_UI_TOKEN (the page's password) and, "
        "to launch, the API key in the environment. To try it against a local fake Tabbly, "
        "`dialer demo --page` starts both.",
        epilog=None,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    add("--port", type=int, default=8080, help="port (default 8080)")
    add(
        "--root",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="project folder holding campaigns/ (reports/ and uploads/ go beside)",
    )
    add(
        "--https-proxy",
        action="store_true",
        help="the page is served to browsers over HTTPS by a reverse proxy in front of this "
        "server: the session cookie is marked Secure (never sent over plain HTTP)",
    )
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace) -> int:
    from dialer.web import serve

    return serve(args.root, args.host, args.port, https_proxy=args.https_proxy)
