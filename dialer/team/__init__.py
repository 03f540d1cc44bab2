"""The team of a project folder: the people who may use the page, their roles, and the audit
trail of what people and commands did. Kept in the shared state (`state/team.sqlite`)."""
