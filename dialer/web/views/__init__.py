"""The page's routes: each module parses its requests, asks the services, renders."""
