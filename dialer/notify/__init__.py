"""Notifications (webhooks): a campaign's events written to the folder's outbox
(`state/outbox.sqlite`) before a command ends, and delivered with retries by whichever
command of the folder, or `dialer serve`, comes next."""
