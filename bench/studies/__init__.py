"""Studies: one-off questions answered with the measuring and results packages (the definition effect, the
profiler's own cost)."""
