"""The source side of a teaching page, read with ``ast`` (framework-free): excerpts of a model's three twins
and of the training code each style needs, exactly as the files have them, and their lines of code."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import io
import textwrap
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from twinbench.models import get_model_spec

ROOT = Path(__file__).resolve().parents[2]
STYLES = ("keras", "torch", "tf_keras")  # the implementations, as a page shows them

# The training code each style needs, as twinbench runs it: "module:qualified.name", read from the source.
TRAINING_CODE = {
    "keras": ["twinbench.backends.keras_fit:compile_model", "twinbench.backends.keras_runner:KerasRunner.fit"],
    "torch": ["twinbench.backends.torch_runner:train_step", "twinbench.backends.torch_runner:evaluate", "twinbench.backends.torch_runner:train",
              "twinbench.backends.torch_runner:TorchRunner.fit"],
    "tf_keras": ["twinbench.backends.keras_fit:compile_model", "twinbench.backends.tf_keras_runner:TfKerasRunner.fit"],
}
# Helpers the training code above calls that exist only to make the comparison fair (shared batch order,
# synchronised timing); named on the page, not shown.
TRAINING_HELPERS = {
    "keras": "`EpochBatches` (a `PyDataset` in the shared batch order) and `_EpochTimer` (timing callback)",
    "torch": "`EpochBatchSampler` (the shared batch order) and `LoopHooks` (timing hooks, with a Keras-style "
             "`ProgressBar`)",
    "tf_keras": "`EpochBatches` (a `Sequence` in the shared batch order) and `_EpochTimer` (timing callback)",
}

# The name through which each style's training code reaches twinbench's measurement (a Keras callback, the PyTorch
# loop's hooks): the pages count the lines that mention it apart.
MEASUREMENT_NAMES = {"keras": "timer", "torch": "hooks", "tf_keras": "timer"}


class DocsError(RuntimeError):
    """The pages cannot be generated (a builder that is not in the source, missing data); one line."""


def module_path(module_name: str) -> Path:
    """The ``.py`` file of a module, found without importing it (no framework gets imported)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise DocsError(f"cannot find the source of module {module_name!r}")
    return Path(spec.origin)


def relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _bound_names(node) -> list[str]:
    """Names a top-level statement binds (``def f``, ``X = ...``, ``from m import a as b``)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.Import):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [a.asname or a.name for a in node.names]
    return []


def _used_names(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


@dataclass
class Excerpt:
    """The part of one module that a set of names needs: their definitions, what they use, the imports."""

    module: str
    path: Path
    text: str
    nodes: list = field(repr=False, default_factory=list)
    imports: list[tuple[str, str]] = field(default_factory=list)  # (module, name) of every from-import used


def excerpt(module_name: str, names) -> Excerpt:
    """Cut from ``module_name`` the top-level statements that ``names`` need, transitively, in file order.

    The module docstring comes first; comment lines directly above a kept statement are kept with it.
    Other definitions in the same file (another model of the family) are left out.
    """
    path = module_path(module_name)
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    bound = {}
    for node in tree.body:
        for name in _bound_names(node):
            bound.setdefault(name, node)
    keep, queue = [], list(names)
    while queue:
        name = queue.pop()
        node = bound.get(name)
        if node is None:
            continue
        if not any(node is kept for kept in keep):
            keep.append(node)
            queue.extend(_used_names(node))
    missing = [n for n in names if n not in bound]
    if missing:
        raise DocsError(f"{relative(path)} defines no {missing[0]!r}")
    keep.sort(key=lambda n: n.lineno)

    parts = []
    docstring = ast.get_docstring(tree, clean=False)
    if docstring is not None:
        first = tree.body[0]
        parts.append("\n".join(lines[first.lineno - 1:first.end_lineno]))
    position = {id(node): i for i, node in enumerate(tree.body)}
    previous = None
    for node in keep:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        while start > 1 and lines[start - 2].lstrip().startswith("#"):
            start -= 1
        text = "\n".join(lines[start - 1:node.end_lineno])
        if previous is None:
            separator = "\n\n" if parts else ""
        elif position[id(node)] == position[id(previous)] + 1:  # neighbours in the file: keep its spacing
            separator = "\n" + "".join(line + "\n" for line in lines[previous.end_lineno:start - 1])
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) or isinstance(previous, (ast.FunctionDef, ast.ClassDef)):
            separator = "\n\n\n"  # something was left out in between: PEP 8 spacing
        else:
            separator = "\n\n"
        parts.append(separator + text)
        previous = node
    imports = [(node.module, alias.name) for node in keep if isinstance(node, ast.ImportFrom) and node.module
               for alias in node.names]
    return Excerpt(module=module_name, path=path, text="".join(parts) + "\n", nodes=keep, imports=imports)


def member_source(target: str) -> tuple[str, Path]:
    """Source of ``"module:function"`` or ``"module:Class.method"`` (dedented), read with ``ast``."""
    module_name, _, qualname = target.partition(":")
    path = module_path(module_name)
    source = path.read_text()
    scope = ast.parse(source).body
    node = None
    for part in qualname.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        if node is None:
            raise DocsError(f"{relative(path)} defines no {qualname!r} (listed in twinbench.twins.teaching.TRAINING_CODE)")
        scope = node.body
    lines = source.splitlines()
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return textwrap.dedent("\n".join(lines[start - 1:node.end_lineno])) + "\n", path


def count_code_lines(text: str) -> int:
    """Lines of code: not blank, not only a comment, not part of a docstring."""
    text = textwrap.dedent(text)
    skip = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                skip.update(range(first.lineno, first.end_lineno + 1))
    code_lines = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            code_lines.update(range(token.start[0], token.end[0] + 1))
    return len(code_lines - skip)


def count_lines_naming(text: str, name: str) -> int:
    """Lines of code (as ``count_code_lines`` counts them) on which the identifier ``name`` appears."""
    text = textwrap.dedent(text)
    return len({token.start[0] for token in tokenize.generate_tokens(io.StringIO(text).readline)
                if token.type == tokenize.NAME and token.string == name})


def _project_module(name: str | None) -> bool:
    return bool(name) and (name == "twinbench.models" or name.startswith("twinbench.models."))


def _is_package(name: str) -> bool:
    return module_path(name).name == "__init__.py"


@dataclass
class ModelSources:
    """The source excerpts of one model: one per style, plus the project modules more than one style imports."""

    definitions: dict[str, list[Excerpt]]  # style -> the builder's module excerpt, then its own helpers
    shared: list[Excerpt]  # project modules (architecture tables) imported by two or more styles
    shared_by: dict[str, list[str]]  # shared module -> the styles that import it
    torchvision: list[str]  # torchvision names the PyTorch twin calls, e.g. "torchvision.models.resnet50"


def _builder_target(builder) -> str:
    """``"module:function"`` of a builder, also where a model from outside registered the function itself."""
    return builder if isinstance(builder, str) else f"{builder.__module__}:{builder.__name__}"


def model_sources(model_name: str) -> ModelSources:
    """Excerpts of the three twins of ``model_name`` and of the project modules they import."""
    spec = get_model_spec(model_name)
    wanted: dict[str, dict[str, set[str]]] = {}  # style -> module -> names
    for style in STYLES:
        if style not in spec.builders:
            continue
        module_name, _, function = _builder_target(spec.builders[style]).partition(":")
        wanted[style] = {module_name: {function}}
        # Follow imports into project modules (architecture tables, shared blocks) until nothing new appears.
        changed = True
        while changed:
            changed = False
            for module, names in list(wanted[style].items()):
                for imported_from, name in excerpt(module, sorted(names)).imports:
                    if not _project_module(imported_from) or _is_package(imported_from):
                        continue  # a framework, or a package's registry: not code of this model
                    if name not in wanted[style].setdefault(imported_from, set()):
                        wanted[style][imported_from].add(name)
                        changed = True
    users: dict[str, list[str]] = {}
    for style, modules in wanted.items():
        for module in modules:
            users.setdefault(module, []).append(style)
    shared_modules = [m for m, styles in users.items() if len(styles) > 1]
    definitions = {}
    for style, modules in wanted.items():
        builder_module = _builder_target(spec.builders[style]).partition(":")[0]
        order = [builder_module] + sorted(m for m in modules if m != builder_module and m not in shared_modules)
        definitions[style] = [excerpt(m, sorted(modules[m])) for m in order if modules[m]]
    shared = [excerpt(m, sorted(set().union(*(wanted[s][m] for s in users[m])))) for m in sorted(shared_modules)]
    torchvision = []
    for part in definitions.get("torch", []):
        torchvision += _torchvision_names(part)
    return ModelSources(definitions=definitions, shared=shared, shared_by={m: users[m] for m in shared_modules},
                        torchvision=sorted(set(torchvision)))


def _torchvision_names(part: Excerpt) -> list[str]:
    """Dotted torchvision names the excerpt uses (``torchvision.models.resnet50``)."""
    aliases = {}  # local name -> dotted torchvision name
    for node in part.nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "torchvision":
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or "torchvision"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torchvision":
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found = set()
    for node in part.nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute):
                chain, base = [], sub
                while isinstance(base, ast.Attribute):
                    chain.append(base.attr)
                    base = base.value
                if isinstance(base, ast.Name) and base.id in aliases:
                    found.add(".".join([aliases[base.id], *reversed(chain)]))
            elif isinstance(sub, ast.Name) and sub.id in aliases and "." in aliases[sub.id]:
                found.add(aliases[sub.id])
    # keep the longest names only: "torchvision.models.resnet50", not also "torchvision.models"
    return [n for n in found if not any(other.startswith(n + ".") for other in found)]


def training_code(style: str) -> list[tuple[str, str, Path]]:
    """(qualified name, source, file) of each piece of training code ``style`` needs."""
    return [(target.partition(":")[2], *member_source(target)) for target in TRAINING_CODE[style]]
