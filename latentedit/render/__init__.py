"""Rendering edits: calibrate each (method, edit)'s step on validation codes, then render test codes over α."""
