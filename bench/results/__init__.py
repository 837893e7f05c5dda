"""Results: the overhead decomposition, text tables, the report and its figures, from records (with the statistics of
``twinbench.stats``, which measuring uses too).

Imports no framework (a test proves it), so it runs in any environment, or in none.
"""
