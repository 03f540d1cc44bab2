"""What was called: the campaign's SQLite ledger, claims journal, dials, the shared contact
counts, and the rebuild from reports.
"""
