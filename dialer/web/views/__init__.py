"""The page's routes: each module adds its own (`add_routes(app, site)`), parses its requests,
asks the services through a `Site`, and renders; `dialer/web/__init__.py` lists each."""
