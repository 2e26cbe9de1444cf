"""Data files and generators that tests (and benchmarks) build their inputs from."""
