"""dialer: a spreadsheet of contacts -> one personalised Tabbly voice-AI call per row."""

__version__ = "0.1.0"
