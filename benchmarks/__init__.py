"""One-off measurements of xetstore, run from a source checkout (`python -m benchmarks.NAME`).

They are not shipped: the `xetstore bench` command and the workloads and systems these
scripts share are the installed package's, in `xetstore.bench`.
"""
