"""One module per command: its options, help and example (`add_parser`) and its handler
(`handle`), assembled by `cli.build_parser`. `arguments` holds what their parsers share.

The work of `validate`, `run`, `status` and `demo` is in their modules (`demo_page` is
`demo --page`); `sync`, `ledger`, `serve` and `fake_tabbly` parse their arguments and hand
over to `outcomes/sync.py`, `ledger/rebuild.py`, `web/` and `fake_tabbly/`, loaded then.
"""
