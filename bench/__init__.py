"""Benchmarks and the inputs they generate. An entry point: the product never imports it."""
