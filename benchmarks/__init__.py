"""xetstore benchmarks (filled in below)."""
