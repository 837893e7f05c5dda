"""Which PyTorch tensor is which Keras weight, for a pair of models twinbench did not write.

Three ways, tried in this order:

1. **a mapping** the user gives (``torch_keys``: a dict ``{keras_path: torch_key}`` or a function
   ``keras_path -> torch_key``, like the registry's ``torch_keys``);
2. **by name**, when every Keras weight's default key exists in the module (``conv1/kernel`` -> ``conv1.weight``:
   the naming twinbench's own twins use);
3. **in order, by shape**: the layers that own weights, taken in the order each framework runs them for one
   batch (and, if that fails, in the order they were defined), paired one to one when their tensors have the
   same shapes after the layout transforms (conv kernels HWIO -> OIHW, dense kernels transposed; BatchNorm's
   four tensors in the same order on both sides).

The Flatten permutation (Keras flattens ``(H, W, C)``, PyTorch ``(C, H, W)``) comes from the Keras graph in every
case (``twinbench.models.weights.torch_layout``). A pairing that cannot work is a ``WeightMismatchError`` that lists both
sides' tensors where they stop lining up. Equal shapes cannot tell two same-sized layers apart: if a pair is
swapped, the twin check fails and the localisation names the layer; a ``torch_keys`` mapping fixes it.
"""

from __future__ import annotations

from twinbench.models.weights import (
    TorchLayout,
    WeightMismatchError,
    default_torch_key,
    flatten_inputs,
    to_torch_state,
)


def torch_shape_of(keras_shape) -> tuple[int, ...]:
    """The shape a Keras tensor has in PyTorch's layout (conv HWIO -> OIHW, dense ``(in, out)`` -> ``(out, in)``)."""
    shape = tuple(int(d) for d in keras_shape)
    if len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    if len(shape) == 3:  # Conv1D: (W, I, O) -> (O, I, W)
        return (shape[2], shape[1], shape[0])
    if len(shape) == 2:
        return (shape[1], shape[0])
    return shape


def _depthwise_shape(keras_shape) -> tuple[int, ...] | None:
    """A depthwise kernel ``(H, W, C, M)`` in PyTorch: ``(C*M, 1, H, W)``."""
    if len(keras_shape) != 4:
        return None
    h, w, c, m = (int(d) for d in keras_shape)
    return (c * m, 1, h, w)


def _fits(keras_shape, torch_shape) -> bool:
    torch_shape = tuple(torch_shape)
    return torch_shape in (torch_shape_of(keras_shape), _depthwise_shape(keras_shape))


def keras_groups(keras_layers) -> list[tuple[str, list[tuple[str, tuple]]]]:
    """``[(layer name, [(weight path, shape), ...]), ...]`` for the layers that own weights, in the given order."""
    groups = []
    for layer in keras_layers:
        weights = [(v.path, tuple(v.shape)) for v in layer.weights]
        if weights:
            groups.append((layer.name, weights))
    return groups


def torch_groups(modules, state_shapes) -> list[tuple[str, list[tuple[str, tuple]]]]:
    """``[(module name, [(state key, shape), ...]), ...]`` for ``(name, module)`` pairs that own tensors.

    ``num_batches_tracked`` is BatchNorm's step counter, not a weight: it has no Keras counterpart.
    """
    groups = []
    for name, module in modules:
        prefix = f"{name}." if name else ""
        keys = [f"{prefix}{key}" for key in module.state_dict(keep_vars=True) if "." not in key]
        keys = [key for key in keys if key in state_shapes and not key.endswith("num_batches_tracked")]
        if keys:
            groups.append((name, [(key, state_shapes[key]) for key in keys]))
    return groups


def _listing(groups, start, *, count=6) -> str:
    """The next ``count`` tensors of ``groups`` from group ``start`` on: ``[conv2/kernel (3, 3, 16, 32), ...]``."""
    shown = [f"{path} {shape}" for _, tensors in groups[start:] for path, shape in tensors]
    return "[" + ", ".join(shown[:count]) + (", ..." if len(shown) > count else "") + "]"


def pair_in_order(keras_side, torch_side) -> dict[str, str]:
    """Pair two lists of groups (``keras_groups``, ``torch_groups``) one to one; ``{keras_path: torch_key}``.

    Each Keras layer takes the next unpaired PyTorch module if their tensors line up. If not, it takes the one later
    module that does, when there is exactly one: two branches of a block (a residual block's projection) may run in
    another order on the two sides.

    Raises:
        WeightMismatchError: at the first Keras layer that no module fits, or that several later modules fit
            (ambiguous), listing the tensors of both sides from there on.
    """
    keys = {}
    left = list(torch_side)
    for i, (k_name, k_tensors) in enumerate(keras_side):
        fitting = [group for group in left if _group_fits(k_tensors, group[1])]
        if left and fitting and fitting[0] is left[0]:
            chosen = left[0]
        elif len(fitting) == 1:
            chosen = fitting[0]
        else:
            problem = ("no PyTorch module left fits it" if not fitting else
                       f"the next module {left[0][0]!r} does not fit and {len(fitting)} later ones do "
                       f"({', '.join(repr(name) for name, _ in fitting[:4])}): ambiguous")
            raise WeightMismatchError(
                f"Cannot pair the weights by shape: Keras layer {k_name!r} (the {_ordinal(i + 1)} with weights): "
                f"{problem}. Keras from there: {_listing(keras_side, i)}; PyTorch unpaired: {_listing(left, 0)} "
                f"(Keras shapes HWIO / (in, out), PyTorch OIHW / (out, in)); give a torch_keys mapping to pair them "
                f"by name"
            )
        left.remove(chosen)
        for (path, _), (key, _) in zip(k_tensors, chosen[1], strict=True):
            keys[path] = key
    if left:
        raise WeightMismatchError(
            f"PyTorch has {len(left)} module(s) with weights that no Keras layer pairs with: {_listing(left, 0)}"
        )
    return keys


def _group_fits(k_tensors, t_tensors) -> bool:
    return len(k_tensors) == len(t_tensors) and all(
        _fits(k_shape, t_shape) for (_, k_shape), (_, t_shape) in zip(k_tensors, t_tensors, strict=True))


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def keys_from_mapping(torch_keys, keras_paths, state_shapes) -> dict[str, str]:
    """``{keras_path: torch_key}`` from a user's mapping (dict or function), every key checked to exist."""
    keys = {}
    for path in keras_paths:
        if callable(torch_keys):
            key = torch_keys(path)
        elif path in torch_keys:
            key = torch_keys[path]
        else:
            raise WeightMismatchError(f"The torch_keys mapping has no entry for Keras weight {path!r}.")
        if key not in state_shapes:
            raise WeightMismatchError(
                f"torch_keys maps Keras weight {path!r} to {key!r}, which the PyTorch module does not have "
                f"(it has e.g. {', '.join(list(state_shapes)[:4])})."
            )
        keys[path] = key
    return keys


def keys_by_name(keras_paths, state_shapes) -> dict[str, str] | None:
    """``{keras_path: torch_key}`` when every Keras weight's default key is in the module, else ``None``."""
    keys = {path: default_torch_key(path) for path in keras_paths}
    return keys if all(key in state_shapes for key in keys.values()) else None


def layout_for(keras_model, keys: dict[str, str]) -> TorchLayout:
    """The ``TorchLayout`` the runners use, for a pairing ``keys``."""
    return TorchLayout(keys=dict(keys), flatten_inputs=flatten_inputs(keras_model))


def check_layout(weights, layout: TorchLayout, state_shapes) -> None:
    """Every paired tensor converts to its PyTorch shape and every PyTorch tensor is paired (or a clear error)."""
    to_torch_state(weights, layout, state_shapes)
    unpaired = [key for key in state_shapes if key not in set(layout.keys.values())
                and not key.endswith("num_batches_tracked")]
    if unpaired:
        raise WeightMismatchError(
            f"PyTorch tensor(s) {', '.join(f'{key} {state_shapes[key]}' for key in unpaired[:4])} have no "
            f"counterpart in the Keras model."
        )
