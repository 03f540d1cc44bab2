"""The run itself: the gate, calling windows, pacing, the worker pool, one row's attempts,
retries, stops, progress.
"""
