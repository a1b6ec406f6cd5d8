"""Benchmarking: latency, load time, memory and size per artifact and runtime (desktop; phones to come)."""
