"""Metrics of rendered edits and the run's aggregated results table."""
