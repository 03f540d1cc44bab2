"""The modules the page runs as memory-capped child processes (`python -m ...`)."""
