"""Tabbly's API as the dialer speaks it: trigger-call, call logs, agents (mirrors `fake_tabbly`)."""
