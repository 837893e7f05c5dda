"""twinbench's benchmark side: the CLI, the shared profiler, statistics, result records, reports.

Nothing in this package imports a framework directly; it calls ``backends`` through one interface.
"""
