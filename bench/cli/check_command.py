"""``python -m twinbench check``: is your Keras model the same network as your PyTorch module, and if not, where do
they part? Exit code 0 when identical, 1 when not, 2 for input that cannot be checked (one line, no traceback)."""

from __future__ import annotations

from twinbench.cli.checks import USER_ERRORS
from twinbench.cli.options import EXIT_FAILED, CliError, input_shape, non_negative_int, positive_int


def add_check_parser(sub):
    check = sub.add_parser("check", help="check a Keras model against a PyTorch module (a pair file, or a registered "
                                         "model's twins) and name the first layer that differs")
    which = check.add_mutually_exclusive_group(required=True)
    which.add_argument("file", nargs="?", default=None, metavar="FILE.py",
                       help="defines keras_model(*, input_shape, num_classes) and torch_model(...); optionally "
                            "INPUT_SHAPE, NUM_CLASSES and a torch_keys weight mapping")
    which.add_argument("--model", default=None, help="a registered model: its Keras definition vs its PyTorch twin")
    check.add_argument("--input-shape", type=input_shape, default=None, help="HxWxC; default: the file's INPUT_SHAPE")
    check.add_argument("--num-classes", type=positive_int, default=None, help="default: the file's NUM_CLASSES")
    check.add_argument("--steps", type=non_negative_int, default=0, metavar="K",
                       help="also train both K SGD steps and check that losses and weights stay within the "
                            "envelope of the PyTorch model's own float32 drift from float64 (e.g. 50)")


def cmd_check(args) -> int:
    from twinbench.backends import resolve_backend, select_keras_backend
    from twinbench.models import get_model_spec
    from twinbench.twins.own_pair import PairError, check_file, check_registered

    try:
        if args.model is not None:
            if args.input_shape or args.num_classes:
                raise CliError("--input-shape and --num-classes go with FILE.py; --model uses the model's twin-test case")
            get_model_spec(args.model).check_implementation("torch")
        select_keras_backend(resolve_backend("keras"))  # before the pair file imports keras
        report = (check_registered(args.model, steps=args.steps) if args.model is not None
                  else check_file(args.file, input_shape=args.input_shape, num_classes=args.num_classes,
                                  steps=args.steps))
    except (*USER_ERRORS, PairError) as err:
        raise CliError(str(err)) from None
    print(report)
    return 0 if report.identical else EXIT_FAILED
