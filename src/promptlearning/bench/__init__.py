"""Benchmark suites: YAML files that expand into jobs, the results store, executors and reports."""
