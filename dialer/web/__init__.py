"""`dialer serve`: one page on which marketing uploads a sheet, checks it, launches, watches,
stops and downloads the report.

    $ export DIALER_UI_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
    $ TABBLY_API_KEY=... dialer serve                              # http://127.0.0.1:8080
    $ dialer demo --page          # or: the page and a local fake Tabbly, one URL to open

Nothing is reimplemented: a check is `dialer validate` and a launch is `dialer run --yes
--progress jsonl`, each a child process of this server, so the page follows exactly the CLI's
rules, ledger and report. The Stop button sends the run SIGINT, the same clean stop as Ctrl-C.
The API key stays in this process's environment and never reaches a page.

The parts, each in its own module:

    settings.py   every limit, rate, age and grace period (`Settings`, `DEFAULTS`)
    auth.py       the token rule, login throttling, sessions, CSRF, the login-required middleware
    campaigns.py  campaigns/ parsed once per file change (mtime and size)
    uploads.py    uploads/: streamed under server-chosen names, pruned by age and caps
    reports.py    reports/: past runs, a check's refused rows, CSV/XLSX downloads
    jobs.py       the child processes: checks (at most `max_checks`), runs, Stop, and the
                  fingerprints that bind a launch to the check someone read
    texts.py      what the page says; the HTML is in dialer/templates/
    headers.py    the security headers on every response
    handlers.py   thin aiohttp handlers: parse the request, ask the parts, render
    app.py        `Server` (the parts together, the routes) and `serve`
"""

from dialer.web.app import Server, serve
from dialer.web.auth import TOKEN_ENV
from dialer.web.settings import DEFAULTS, Settings

__all__ = ["DEFAULTS", "TOKEN_ENV", "Server", "Settings", "serve"]
