"""``twinbench export``: a model in a framework's own inference format, reloaded in that format's runtime and its
logits checked against the model it came from (``twinbench.backends.export``). Exit code 0 when every artifact agrees, 1 when
one does not, 2 for input that cannot be exported (one line, no traceback)."""

from __future__ import annotations

from twinbench.cli.checks import USER_ERRORS, check_writable, validate_cell, validate_weights
from twinbench.cli.options import (
    EXIT_FAILED,
    CliError,
    add_cell_arguments,
    add_weights_arg,
    input_shape,
    non_negative_int,
    positive_int,
)
from twinbench.records import RESULTS


def add_export_parser(sub):
    export = sub.add_parser("export", help="export a model for inference (SavedModel, ONNX, torch.export, "
                                           "jax.export), reload it in its runtime and check its logits")
    add_cell_arguments(export)
    export.add_argument("--format", default=None,
                        help="tf_saved_model, onnx, torch (torch.export) or jax (jax.export); 'all': every format "
                             "the implementation can produce (default: its first)")
    add_weights_arg(export)
    export.add_argument("--out", default=RESULTS["export"], help="directory for the artifacts")
    export.add_argument("--input-shape", type=input_shape, default=None, help="HxWxC; default: the model's own")
    export.add_argument("--num-classes", type=positive_int, default=None)
    export.add_argument("--batch", type=positive_int, default=8, help="random images the logits are checked on")
    export.add_argument("--seed", type=non_negative_int, default=0)


def cmd_export(args) -> int:
    from twinbench.backends import resolve_backend
    from twinbench.backends.export import EXPORT_FORMATS, ExportError, check_format, export_cell

    try:
        backend = resolve_backend(args.impl, args.backend)
        formats = EXPORT_FORMATS[(args.impl, backend)]
        formats = list(formats) if args.format == "all" else [args.format or formats[0]]
        for fmt in formats:  # what the implementation can produce at all, before this environment is checked
            check_format(args.impl, backend, fmt, packages=False)
        validate_cell(args.model, args.impl, backend, "synthetic", args.input_shape)
        validate_weights(args.weights, args.model, backend)
        for fmt in formats:
            check_format(args.impl, backend, fmt)
        check_writable(args.out)
        results = export_cell(args.model, args.impl, backend, formats, out_dir=args.out, weights=args.weights,
                              input_shape=args.input_shape, num_classes=args.num_classes, batch=args.batch,
                              seed=args.seed)
    except (*USER_ERRORS, ExportError) as err:
        raise CliError(str(err)) from None
    for result in results:
        verdict = "same logits" if result.passed else "LOGITS DIFFER"
        print(f"{result.format}: {result.path} ({result.bytes / 1e6:.2f} MB), reloaded with {result.runtime}: "
              f"max |Δ logits| {result.max_abs_logits:.1e} on {args.batch} images (tolerance {result.tolerance:.1e}): "
              f"{verdict}")
    return 0 if all(r.passed for r in results) else EXIT_FAILED
