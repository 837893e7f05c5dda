"""Results: statistics, the overhead decomposition, text tables, the report and its figures, from records.

Imports no framework (a test proves it), so it runs in any environment, or in none.
"""
