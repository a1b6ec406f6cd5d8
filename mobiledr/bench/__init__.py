"""Benchmarking: machine facts, and (later) latency per runtime on the desktop and on phones."""
