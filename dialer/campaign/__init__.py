"""The campaign file: its values and their rules (`model`), reading it (`parse`, one function
per table), the TOML text the page writes (`toml_text`), and the binding of a run to its
check (`binding`).
"""
