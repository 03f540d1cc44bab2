"""Every tunable of `dialer serve` in one place: body and upload limits, check concurrency,
login throttling, upload retention and grace periods.

    server = Server(root, token, settings=replace(DEFAULTS, max_checks=4))

Each part of the page is given the `Settings` it runs with and reads its numbers from there;
no module restates one. Tests shrink a limit the same way, never by patching a module.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024
DAY = 24 * 3600


@dataclass(frozen=True, slots=True)
class Settings:
    # Login and sessions.
    min_token_chars: int = 24  # `dialer serve` refuses a shorter DIALER_UI_TOKEN
    min_token_distinct: int = 10  # ... and one of fewer different characters ("a" * 30)
    session_seconds: float = 12 * 3600
    sessions_per_person: int = 20  # a 21st login ends that person's oldest session
    login_per_client: tuple[float, float] = (5, 1 / 6)  # 5 wrong tokens at once, then 10 a minute
    login_overall: tuple[float, float] = (30, 1.0)  # 30 at once, then 60 a minute, all clients
    login_clients_kept: int = 10_000  # throttle memory: clients remembered at most

    # Request bodies: every request but a logged-in upload is small, judged before it is read.
    small_body: int = 64 * 1024
    upload_limit: int = 50 * MB
    upload_form_slack: int = MB  # the multipart framing and the small fields around the sheet
    upload_seconds: float = 600.0  # a stalled upload must not hold a check slot forever
    upload_chunk: int = 256 * 1024
    field_limit: int = 1024  # csrf and campaign name
    sheet_name_chars: int = 120  # the uploader's file name, as shown
    tab_name_chars: int = 100  # a workbook tab asked for (Excel's own limit is 31)

    # Checks (child `dialer validate`).
    max_checks: int = 2
    busy_retry_after: int = 30  # seconds, told to the third uploader
    check_memory: int = 2 * 1024**3  # data memory of each process of a check (RLIMIT_DATA)
    check_timeout: float = 600.0

    # Runs (child `dialer run`).
    runs_at_once: int = 3  # runs calling at once, all campaigns; later launches wait in line
    stop_wait: float = 60.0  # a stopping run lets requests in flight finish (SPEC 6.2)
    events_every: float = 1.0  # the live view is re-sent at least this often
    run_messages_shown: int = 5

    # Uploads on disk.
    upload_keep_seconds: float = 7 * DAY
    uploads_max_bytes: int = 1024**3
    uploads_max_files: int = 1000
    prune_every: float = 3600.0

    # Pages.
    problem_rows_shown: int = 200
    past_runs_shown: int = 50
    error_text_chars: int = 300  # an error carried in a redirect's query string

    # The campaign form (views/editor.py).
    preview_rows: int = 5  # rows of the chosen sheet the live preview renders
    previews_at_once: int = 2  # previews, saves and test calls in a child at once
    previews_waiting: int = 8  # ... and waiting for one; more is answered 503
    previews_retry_after: int = 5  # seconds, told with that 503
    preview_timeout: float = 60.0  # a preview's or test call's sheet reading stopped after this
    agents_timeout: float = 5.0  # seconds the agent menu waits for Tabbly's get-agents
    agents_cache_seconds: float = 60.0  # an organisation's agents, reused this long
    agents_cache_entries: int = 64  # organisations (and keys) remembered; the oldest dropped
    # Asks of get-agents not answered from that cache: 10 at once, then 12 a minute per
    # session; 30 at once, then one a second, for all sessions together.
    agents_per_session: tuple[float, float] = (10, 0.2)
    agents_overall: tuple[float, float] = (30, 1.0)
    test_call_max_row: int = 100_000  # how far into a sheet a test call's row may be
    # "Call me first" is a real call to a real person: a few, by day, to a phone.
    test_calls_per_session_hour: int = 3  # from one logged-in browser in any hour
    test_calls_per_hour: int = 10  # from every session together (one token: one user)
    test_calls_per_campaign_day: int = 5  # of one campaign in any 24 hours (its ledger)
    # Local hours (minutes of the day, every zone of the number) a test call may ring in,
    # whatever the campaign's own window: the strictest legal hours (India 09:00-21:00).
    test_call_hours: tuple[int, int] = (9 * 60, 21 * 60)
    test_calls_shown: int = 20  # the newest test calls listed on the campaign's page
    # `[limits] per_day` of a campaign made on the page (shown in its form; empty: none).
    new_campaign_per_day: int | None = 1
    # Results (child `dialer sync`).
    auto_sync_every: float = 60.0  # an open page of a finished run syncs at most this often
    sync_timeout: float = 300.0  # a sync still reading the logs after this is stopped
    syncs_at_once: int = 2  # syncs reading the logs at once, all campaigns; the rest wait
    sync_memory: int = 1024**3  # data memory of a sync child (RLIMIT_DATA), like a check's
    # Calls per hour is shown once the runs it is measured over lasted this long: a rate
    # over a 20-second run (start-up, one burst) says nothing about an hour.
    calls_per_hour_after: float = 600.0
    dispositions_shown: int = 10  # bars of "What they said"; the rest is one bar, "other"
    run_optouts_shown: int = 50  # the opt-outs of a run listed under its results
    # Schedules (state/schedules.toml, fired by `dialer serve`).
    schedule_every: float = 15.0  # seconds between looks at what is due
    # A schedule due while `dialer serve` was down fires when it is back up to this late;
    # later than that it is marked missed (a run hours late surprises the people called).
    schedule_grace: float = 3600.0
    schedules_max: int = 200
    schedule_ahead: float = 366 * DAY  # a "once" at most this far ahead
    # The audit trail's page (/audit).
    audit_page_entries: int = 200  # entries on one page of /audit, newest first


DEFAULTS = Settings()
