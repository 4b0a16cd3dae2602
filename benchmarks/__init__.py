"""Grace benchmarks: how close Grace drives a real vLLM server to its limit (not part of the test suite).

One module per benchmark (exp1, exp2, orchestration, memory); `python -m benchmarks` or `grace bench` runs
them back to back on the same server and trials, prints one table and writes it as JSON to
benchmarks/results/.
"""
