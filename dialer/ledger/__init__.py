"""What was called: a campaign's SQLite ledger, its claims journal and dials, the shared
contact counts, and the rebuild from reports.

- `sqlite`: the SQLite habits (one write transaction, a read that never writes), the run lock
  and its one probe, the errors of a ledger's file.
- `schema`: the tables, the SQL that writes them, opening a file as a ledger.
- `entries`, `facts`, `claims`: the value types written and read; the claims journal.
- `store`: the `Ledger` (open, close, reads); `batch`: a run's grouped commits.
- `dials`: the `dials` table (one row per call) and what the call logs said of it.
- `contact_limits`: calls to one person across the folder's campaigns (`[limits]`).
- `evidence`, `rebuild`, `rebuilt_file`: a lost ledger noticed, and rebuilt from the reports.
"""
