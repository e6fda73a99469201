"""Benchmarks: Ajuste against the bare libraries on the same input, side by side in one run."""
