"""A contact sheet to `Contact`s: the file, its rows, the columns, phone numbers and countries,
the lazy pipeline.
"""
