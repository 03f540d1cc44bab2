"""The campaign file: its model and parser, the TOML text the page writes, the binding of a run
to its check.
"""
