"""`python -m bench`: run the benchmark harness (see bench/runner.py)."""

from bench.runner import main

main()
