"""What every room may use: statuses and exit codes, settings, the clock, masking, paths, the
legal calling-hours floor."""
