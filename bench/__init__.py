"""twinbench's benchmark side, one package per job; they import each other one way (a test proves it):

- ``cell``, ``records``: what a run is (its cell) and what it leaves (its record), shared by all of them;
- ``cli``: ``python -m bench``: parses, checks the input, delegates, sets the exit code;
- ``measuring``: runs a cell in this process and measures it (timing, profiler, environment, FLOP/s);
- ``results``: statistics, decomposition, tables, report and figures from records; imports no framework;
- ``twins``: the teaching pages (``parity``: the twin checks);
- ``studies``: one-off questions (the definition effect, the profiler's own cost).

Nothing in this package imports a framework at module level; it calls ``backends`` through one interface.
"""
