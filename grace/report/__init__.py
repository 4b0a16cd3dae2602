"""Validation and the data-quality report of a run folder (Markdown, JSON, PNG plots): `build.build_report`.

Nothing is imported here: the studies' report parts import its checks, and a study is looked up without
loading the plotting library (tests/test_imports.py).
"""
