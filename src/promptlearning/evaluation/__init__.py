"""Metrics, benchmark suites and reports."""
