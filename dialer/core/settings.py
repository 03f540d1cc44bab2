"""Every tunable of dialer in one place, as scrapy keeps `default_settings.py`: how long a
stopping run waits, how retries back off, the pacer's margin, how many rows a chunk holds, what
a sheet, a template or an upstream's answer may cost before it is refused.

    >>> from dataclasses import replace
    >>> replace(DEFAULTS, max_csv_bytes=1024).max_csv_bytes
    1024

A module reads its numbers from the `Settings` it is given (or `DEFAULTS`); none restates one.
Tests shrink a wait or a limit the same way (`open_sheet(path, settings=...)`), never by
patching a module. Numbers that are facts rather than choices (a format's fixed size, an API's
documented maximum) stay beside the code that reads them. The web page's own tunables are in
`dialer.web.settings`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settings:
    # Stopping (SPEC 6.2): after a first SIGINT/SIGTERM, requests in flight get this long
    # before they are aborted (and recorded `unknown`).
    stop_grace_seconds: float = 5.0

    # Retries (SPEC 6.1): seconds before the second attempt, doubling after that, capped.
    backoff_first: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.5
    # A Retry-After longer than this is capped: a nightly run must not sleep for hours.
    max_retry_after: float = 300.0

    # The trigger-call upstream (SPEC 6.1, 7). An answer's bytes read at most, decompressed
    # (Tabbly's is a few hundred): past it a 2xx is `unknown`, as a cut-off answer is.
    max_answer_bytes: int = 1024 * 1024
    # One request's whole life, connecting included, in the campaign's `timeout_seconds`:
    # connecting may take one, the answer gets the rest however slowly its bytes come.
    request_deadline_timeouts: float = 2.0
    # A longer API key is refused at start: no Tabbly key is near it, and the scrubber that
    # keeps the key's fragments out of every text stays cheap.
    max_api_key_chars: int = 512

    # Pacing (SPEC 6.1): slack added to the 1-second window, absorbing scheduling jitter
    # between this process and the upstream's clock (costs 1% of the rate).
    window_margin: float = 0.01
    # Above this rate sends are not spaced over the second (timers cannot space them 2 ms
    # apart): the sliding log alone holds the cap.
    smooth_up_to: float = 100.0
    # Allocations between two collections of the youngest generation during a run's sends
    # (`engine.dispatch`); Python's default is 700.
    gc_young_objects: int = 10_000
    # Ready rows waiting for a worker, per worker: the feed reads no further ahead.
    queue_per_worker: int = 4

    # Reading sheets: rows per chunk handed from the reader to the preparer and the feed.
    chunk_rows: int = 5_000
    # Below this size (~85,000 rows of a typical sheet) one process prepares the sheet for
    # less CPU than workers do: passing rows to them and back costs more than it saves, and a
    # run sends slower than one process prepares. At most this many workers, each with at
    # most this many chunks handed to it ahead of the reader.
    parallel_from_bytes: int = 8 * 1024 * 1024
    max_prepare_workers: int = 4
    chunks_ahead_per_worker: int = 2
    # A header wider or a column name longer than this is not a header row (nor a contact sheet).
    max_header_columns: int = 1_000
    max_header_chars: int = 1_000

    # A CSV (SPEC 4, 7): its size; one cell (csv.field_size_limit) and one physical line, far
    # beyond any contact's data. Rows are parsed `csv_batch_rows` at a time and a batch may hold
    # at most `max_csv_batch_chars` of text: many tiny cells cost ~50 bytes each in Python, so
    # this bounds the worst case to ~150 MB. The delimiter is guessed from the first
    # `csv_sniff_bytes`, and at most `csv_sniff_records` records of them.
    max_csv_bytes: int = 1 << 30
    max_csv_cell_chars: int = 1 << 20
    max_csv_line_chars: int = 1 << 20
    csv_batch_rows: int = 256
    max_csv_batch_chars: int = 8 << 20
    csv_sniff_bytes: int = 1 << 20
    csv_sniff_records: int = 50

    # An XLSX (SPEC 7), judged before python-calamine reads it: the file, its parts; every part
    # unpacked together, the sheets' XML (streamed by calamine: costs time, not memory), the
    # shared strings (held in memory whole) and any other part calamine reads (workbook,
    # styles). A part over `xlsx_ratio_from_bytes` this much bigger than its compressed size is
    # a zip bomb (real sheet XML is ~5-30x). The sheet range calamine allocates: 16,000,000
    # cells is ~510 MB; a range over `xlsx_sparse_from` cells must also be at least
    # 1/`xlsx_sparse_ratio` filled (a real table is dense, a stray cell is not).
    max_xlsx_bytes: int = 512 << 20
    max_xlsx_parts: int = 10_000
    max_xlsx_uncompressed: int = 3 << 29
    max_xlsx_sheet_part: int = 1 << 30
    max_xlsx_strings_part: int = 256 << 20
    max_xlsx_other_part: int = 16 << 20
    max_xlsx_ratio: int = 200
    xlsx_ratio_from_bytes: int = 1 << 20
    max_xlsx_cells: int = 16_000_000
    xlsx_sparse_from: int = 1_000_000
    xlsx_sparse_ratio: int = 16

    # Templates (SPEC 7, `templating.sandbox`): a template's source (first_line, instruction);
    # any text built while rendering, and the whole output; any list or range built, and what a
    # loop may go through; any integer (4,096 bits is about 1,200 digits); steps (loop
    # iterations, calls, filters, operators) and CPU seconds per render.
    max_template_chars: int = 5_000
    max_template_text_chars: int = 20_000
    max_template_items: int = 1_000
    max_template_int_bits: int = 4_096
    max_template_steps: int = 10_000
    template_cpu_seconds: float = 1.0
    # Longest rendered messages, longer makes the row invalid. The first line is spoken before
    # the callee can answer: at ~15 characters a second, 2,000 is over two minutes, longer than
    # any greeting, yet a sentence with several full 200-character cells fits. The
    # instruction is the agent's prompt, read not spoken.
    max_first_line_chars: int = 2_000
    max_instruction_chars: int = 8_000

    # Tabbly's agent list, for the page's menu: pages read at most (1,000 agents is far more
    # than a menu can show) and one page's size.
    agents_max_pages: int = 10
    agents_max_page_bytes: int = 1024 * 1024

    # Progress on stderr: a log line (cron) or a JSON line (`dialer serve`) this often.
    log_every_seconds: float = 5.0
    jsonl_every_seconds: float = 0.5

    # Reading Tabbly's call logs (SPEC 10): rows per page (the API's maximum), a whole sync's
    # time budget, one page's size, how often a 429/5xx page is asked again, and how far
    # back a sync reads when no `--since` is given and some call is still `pending`.
    logs_page_size: int = 1000
    sync_deadline_seconds: float = 300.0
    logs_max_page_bytes: int = 64 * 1024 * 1024
    logs_max_pages: int = 20_000
    logs_max_attempts: int = 6
    logs_timeout_seconds: float = 60.0
    logs_lookback_days: int = 30
    # A page is refused (the sync fails, nothing stored) past this many rows (the page asked
    # for logs_page_size), or past this many JSON values, counted before they are decoded:
    # 60 MB of `{}` must not become 20 million objects (a sync stays within ~300 MB).
    logs_max_page_rows: int = 10_000
    logs_max_page_values: int = 1_000_000
    # How far a log row's time may precede the stamp of the call it speaks of: Tabbly's clock
    # and ours disagree a little, `called_time` is cut to the second and a dial is stamped
    # when Tabbly answers (after the trigger's 30 s timeout at worst). An earlier row is an
    # earlier call's (maybe another campaign's to the same person), never this one's.
    logs_clock_skew_seconds: float = 60.0
    # Texts kept from a log row, cut to these many characters (the ledger stays small).
    log_text_chars: int = 2_000
    log_transcript_chars: int = 100_000
    # The agent's extraction (`call_json_output`): a JSON object of at most this much text and
    # log_json_keys keys is kept as it is; anything else as its text, cut.
    log_json_chars: int = 65_536
    log_json_keys: int = 50
    # A log row's duration or cost outside 0 to these is a broken value, ignored (and the row
    # counted): 1e300 s does not fit the ledger, a cost of 1e308 makes every total "inf".
    log_max_call_seconds: int = 86_400
    log_max_call_cost: float = 1_000_000.0

    # Notifications (SPEC 13, `dialer.notify`): tries per event, by every process together
    # (6 tries 10, 20, 40, 80 and 160 s apart: about 5 minutes), each within its timeout; a
    # Retry-After is honoured up to the longest wait. A process leases an entry for longer
    # than one try, so no other process sends it meanwhile. A command that wrote events
    # lingers this long at its end for their retries (the rest is left to the next command
    # or `dialer serve`, which looks every `notify_serve_every_seconds`). `outcomes` sends at
    # most this many people per event. Delivered and given-up entries are kept for a while.
    notify_max_tries: int = 6
    notify_backoff_first: float = 10.0
    notify_backoff_max: float = 160.0
    notify_timeout_seconds: float = 10.0
    notify_lease_seconds: float = 30.0
    notify_linger_seconds: float = 60.0
    notify_serve_every_seconds: float = 5.0
    notify_batch_people: int = 500
    notify_keep_days: float = 30.0


DEFAULTS = Settings()
