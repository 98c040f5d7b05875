"""Benchmark harness: interleaved timing of FP32 and packed variants, memory, reports."""
