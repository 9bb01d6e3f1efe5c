"""Measurements of xetstore: dedup, throughput and memory, against baselines run alongside."""
