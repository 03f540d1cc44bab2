"""`dialer serve`: one page on which marketing uploads a sheet, checks it, launches, watches,
stops and downloads the report.

    $ export DIALER_UI_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
    $ TABBLY_API_KEY=... dialer serve                              # http://127.0.0.1:8080
    $ dialer users add alice --role admin    # then names and passwords; the token is refused
    $ dialer demo --page          # or: the page and a local fake Tabbly, one URL to open

Nothing is reimplemented: a check is `dialer validate` and a launch is `dialer run --yes
--progress jsonl`, each a child process of this server, so the page follows exactly the CLI's
rules, ledger and report. The Stop button sends the run SIGINT, the same clean stop as Ctrl-C.
The API key stays in this process's environment and never reaches a page.

The modules. Imports run one way, down this list: `app` assembles the views, the views take
a `Site` and ask the services, the services use the children and the plain modules at the
bottom; nothing imports `app`, and no service imports a view.

    app.py          `Server` (a `Site` with its application: every view's routes, the
                    middlewares, the pruning loop) and `serve`, the command
    site.py         `Site`: the parts a route may use (settings, auth, people, audit trail,
                    campaigns, uploads, jobs, test calls, templates), `render` (with the
                    person's role), `prune`, the last campaign used
    views/          the routes; each parses its requests, asks the services, renders
      login.py        the login form, a name and password (or the token while nobody is a
                      person) under the login throttle, logging out
      start.py        the start page and uploads: a sheet alone, or with its campaign
      checks.py       the check page in the user's terms, and the launch it confirms
      runs.py         a run's page, its live event stream, Stop, report downloads
      columns.py      the column page: the sheet's headers matched to the campaign's names
      editor.py       the campaign form: create, edit, save, live preview, test call, agents
      sheet_choices.py  the sheets the form previews with, each one's header
      results.py      the results section and page, the Sync button, the results sheet
      chart.py        the outcome and "What they said" charts, inline SVG
      optouts.py      /optouts: the opt-out register's search, add, import and removal
      schedules.py    /schedules and the schedule form of a check; Resume of a stopped run
      audit.py        /audit and /audit.csv: the audit trail listed, filtered, verified, exported
      people.py       /people: an admin adds people, changes roles, sets passwords, removes
    services/       what the routes ask for: the state and the work, no routes
      campaigns.py    campaigns/ parsed once per file change; the campaign each session used
      uploads.py      uploads/: streamed under server-chosen names, pruned by age and caps
      reports.py      reports/: past runs, a check's refused rows, CSV/XLSX downloads
      jobs.py         checks and runs: check slots, launches bound to their check, Stop
      job_records.py  what is kept of a check and a run; a run's people in plain words
      waiting_line.py runs and syncs waiting for their turn
      child_processes.py  how a child is started (memory capped), waited for and said when
                      it fails; the campaign form's queue of children and its two asks
      syncs.py        `dialer sync` children, one per campaign, `syncs_at_once` in all
      outcomes.py     the ledger read for the page: outcomes, what they said, test calls,
                      cost estimate
      optout_register.py  the register for the page: search, add, remove, a sheet's import
                      in a child, the opt-outs of a run
      test_calls.py   "call me first": caps, number types, hours, limits, placing the call
      page_audit.py   what the page writes into the audit trail, and each action's details
      agents.py       the agent menu: get-agents cached, each session's asks throttled
      campaign_fields.py  the campaign form's fields <-> `CampaignForm`, errors by field
      column_fields.py    the column page's fields, their rules and the save into the file
      schedule_book.py    the schedules: firing rules, pausing, state/schedules.toml, cron
      schedule_entry.py   one schedule as the file keeps it, and the schedule form as typed
      schedule_times.py   wall times and time zones of schedules
    children/       modules the page runs as memory-capped child processes
      preview.py      a sheet's rows for the form: preview, a test call's row, trial render
      sheet_probe.py  a sheet's tabs, headers and first cells, for the column page
      optout_sheet.py a sheet's numbers opted out, all or none (the register page's import)
      one_request.py  how a child answers one JSON request (the server's side: ask_child)
    access.py       the role each route needs (one table), the middleware that holds every
                    request to it, the 403 page's call, a viewer's answers masked
    auth.py         the token rule, people's logins, login throttling, sessions, CSRF, the
                    login middleware
    headers.py      the security headers on every response, aiohttp's own 400s included
    texts/          what the page says, one module per page (HTML in templates/)
    sheet_rows.py   a sheet's row numbered as the spreadsheet numbers it
    settings.py     every limit, rate, age and grace period (`Settings`, `DEFAULTS`)
"""

from dialer.web.app import Server, serve
from dialer.web.auth import TOKEN_ENV
from dialer.web.settings import DEFAULTS, Settings

__all__ = ["DEFAULTS", "TOKEN_ENV", "Server", "Settings", "serve"]
