"""Datasets of the worlds: digits (built here, offline)."""
