"""`forensics scan-many`: a fleet of archives as a batch of independent jobs.

inputs (what to scan) -> job (one archive, in a worker) -> index (the submitting process
alone writes the results) -> checks (findings across the fleet) -> page / sarif (outputs);
run ties them together over one `concurrent.futures.Executor` (executors); cache keeps
per-layer results between runs.
"""
