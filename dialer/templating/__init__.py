"""The bounded Jinja2 sandbox that renders each row's greeting and instruction."""
