"""After the calls: read the call logs, match rows to calls, the results file and the sheet
written back.
"""
