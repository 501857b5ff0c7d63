"""Benchmarks of the Rust core's data structures, one module per structure; each exposes ``run(report)``."""
