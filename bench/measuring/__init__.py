"""Measuring: one run of a cell in this process (training, throughput), its timing, profiler, environment and
FLOP/s, faults, and the child processes that run an environment's cells. Talks to frameworks only through
``backends``; imports results' statistics, never the other way round."""
