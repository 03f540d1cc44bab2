"""The page's services: what the routes ask for, none of it HTTP handling."""
