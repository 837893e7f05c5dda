"""Twins: the teaching pages, one model in three styles with the proof that they are one network (the twin
checks themselves are ``twinbench.twins.parity``)."""
