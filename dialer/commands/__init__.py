"""What each command does, wired from the rooms below it."""
