"""Benchmarks run by ``make bench`` (``python -m tests.bench``), never by pytest.

Each module ``p<N>_*.py`` has ``run(ctx) -> list[str]`` returning its result lines in the
form ``P<N> <what>: ours=<figure> baseline=<figure> ratio=<x> target=<n>`` (ratio as a
speed-up of ours over the baseline, both measured in the same run).
"""
