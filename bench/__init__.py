"""Benchmarks for export_widgets: ratios against a baseline measured in the same run (``python -m bench``)."""
