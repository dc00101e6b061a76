"""Benchmarks and the soak: they print figures; tests never assert timings."""
