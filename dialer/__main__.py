from dialer.cli import entry_point

entry_point()
