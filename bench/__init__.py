"""twinbench's benchmark side, one package per job; they import each other one way (a test proves it):

- ``cell``, ``records``: what a run is (its cell) and what it leaves (its record), shared by all of them;
- ``cli``: ``python -m bench``: parses, checks the input, delegates, sets the exit code;
- ``measuring``: runs a cell in this process and measures it (timing, profiler, environment, FLOP/s);
- ``results``: statistics, decomposition, tables, report and figures from records; imports no framework;
- ``twins``: the teaching pages (``parity``: the twin checks; ``own_pair``: the check of your own pair, ``check``);
- ``studies``: one-off questions (the definition effect, the profiler's own cost).

Nothing in this package imports a framework at module level; it calls ``backends`` through one interface.
"""


def check(keras_builder, torch_builder, *, input_shape, num_classes, torch_keys=None, name="your pair", steps=0):
    """Check that your Keras 3 model and your PyTorch module are the same network; name the layer where they part.

    ``bench.check(keras_model, torch_model, input_shape=(32, 32, 3), num_classes=10)`` takes two builders
    ``build(*, input_shape, num_classes)``; ``torch_keys`` optionally maps Keras weight paths to PyTorch state keys
    (a dict or a function); ``steps=K`` also trains both K steps and checks that they stay within the float64
    envelope (``bench.twins.trajectory``). Returns a report: ``report.identical``, and ``print(report)`` for the verdict and
    details. The same as ``python -m bench check FILE.py``; see ``bench.twins.own_pair``.
    """
    from bench.twins.own_pair import check as check_pair

    return check_pair(keras_builder, torch_builder, input_shape=input_shape, num_classes=num_classes,
                      torch_keys=torch_keys, name=name, steps=steps)
