"""The modules the page runs as memory-capped child processes (`python -m ...`): a hostile
sheet or template costs that child, never the server."""
