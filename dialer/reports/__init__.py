"""The per-row report and the end-of-run summary."""
