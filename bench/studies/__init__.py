"""Studies: questions answered by many runs. The declared studies (``declared``: cells, models and sizes, variants,
rounds, order, as data), their plans (``plan``) and the runner that runs a plan, every run its own process
(``runner``; ``twinbench study list | show | run``); and the two studies with their own measuring code, the
definition effect and the profiler's own cost."""
