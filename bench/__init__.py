"""`make bench`: dialer measured through its real CLI against `dialer fake-tabbly` (issue 5).

Every figure is a ratio against a baseline or bound measured in the same run; see `__main__`.
"""
