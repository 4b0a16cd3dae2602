"""The human comparison: how human-like each model in a run folder is, against published human data
(`report.compare_run`).

Nothing is imported here: the studies' comparisons import its helpers, and a study is looked up without
loading the statistics and plotting libraries (tests/test_imports.py).
"""
