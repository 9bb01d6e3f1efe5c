"""`xetstore bench`: dedup, speed and memory of xetstore beside whole-file storage and
other tools, on generated and real-data workloads, each run in its own process.

It sits above the engine and reaches it the way a user does (the public API, the
installed command); the peers it measures (zstandard frames, restic, borg, casync,
hf_xet) are its own business. The one-off measuring scripts live in the source
tree's `benchmarks/` and build on these workloads and systems.
"""
