"""The software stack a cell ran with (``--stack``): the ``stack`` axis of a cell, its grammar and its check.

A **stack** names the versions of the packages a run used where they differ from the project's default pins (the
extras of pyproject.toml: ``keras==3.15.*``, ``torch==2.14.*``...). ``""`` is the default pins; anything else is a
*stack spec*, one or more items joined by ``+``::

    keras==3.10.0                      a release from the package index
    keras==3.10.0+torch==2.13.1        several packages (each once)
    keras@/home/me/src/keras           a local Keras checkout (a folder with pyproject.toml and keras/)
    keras@/tmp/keras-3.16.0-py3-none-any.whl   a wheel file

The packages a spec may name are ``PACKAGES``. ``+`` splits items only where a package name and ``==`` or ``@``
follow, so a local version label stays whole (``torch==2.14.1+cpu``). ``canonical_stack`` writes a spec the one way
cells name it: names in ``PACKAGES``' order, lower case, ``tf_keras`` as ``tf-keras``, paths absolute; so one stack is
one cell, however it was typed. Labels show the items (``keras[torch] keras=3.10.0``), so records of two stacks are
two cells and never pool.

A stack runs in its own virtualenv (``twinbench.studies.stacks`` makes them: ``.nox/stack-<env>-<slug>``), which
holds a file ``twinbench-stack.json`` naming its spec. ``resolve_stack`` is the axis's ``resolve``: before any
framework starts and before anything is recorded, the process checks that what is installed is what its cell claims
(each ``==`` item's version, each ``@`` item installed from that path, and the virtualenv's own spec), so a record
never names a stack it did not run with. A mismatch is one line (exit code 2).

This module imports no framework: versions are read from the installed packages' metadata.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

DEFAULT = ""  # the project's default pins
# The packages a stack names, in the order a canonical spec lists them (pip's distribution names).
PACKAGES = ("keras", "torch", "torchvision", "tensorflow", "tf-keras", "jax", "jaxlib")
MARKER = "twinbench-stack.json"  # in a stack's virtualenv (sys.prefix): the spec it was made for

_SPLIT = re.compile(r"\+(?=\s*[A-Za-z][A-Za-z0-9_.-]*\s*(?:==|@))")
_ITEM = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.-]*)\s*(==|@)\s*(\S.*?)\s*$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!_-]*$")


class StackError(ValueError):
    """A stack spec that does not parse, or a stack that is not what this process has installed; one line."""


@dataclass(frozen=True)
class Item:
    """One package of a stack: ``keras==3.10.0`` (``version``) or ``keras@PATH`` (``path``: a checkout or a wheel)."""

    package: str
    version: str | None = None
    path: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}" if self.version is not None else f"{self.package}@{self.path}"

    @property
    def label(self) -> str:
        """How a cell's label shows it: ``keras=3.10.0``, ``keras@/home/me/src/keras``."""
        return f"{self.package}={self.version}" if self.version is not None else self.spec

    @property
    def requirement(self) -> str:
        """What pip installs: ``keras==3.10.0``, or the path."""
        return self.spec if self.version is not None else self.path


def _package(name: str) -> str:
    package = name.lower().replace("_", "-").replace(".", "-")
    if package not in PACKAGES:
        raise StackError(f"Unknown package {name!r} in a stack. Valid choices: {', '.join(PACKAGES)}.")
    return package


def parse_stack(spec: str) -> tuple[Item, ...]:
    """The items of ``spec`` in ``PACKAGES``' order (``()`` for the default pins); ``StackError`` for a bad one."""
    spec = (spec or "").strip()
    if spec in (DEFAULT, "default"):
        return ()
    items: dict[str, Item] = {}
    for text in _SPLIT.split(spec):
        match = _ITEM.match(text)
        if not match:
            raise StackError(f"Cannot read {text.strip()!r} in --stack {spec!r}: each item is NAME==VERSION or "
                             f"NAME@PATH, joined by '+' (e.g. keras==3.10.0+torch==2.14.1, keras@/path/to/keras).")
        name, operator, value = match.groups()
        package = _package(name)
        if package in items:
            raise StackError(f"--stack {spec!r} names {package} twice.")
        if operator == "==":
            if not _VERSION.match(value):
                raise StackError(f"{package}=={value}: not a version (e.g. {package}==3.10.0). "
                                 f"Received: --stack {spec!r}.")
            items[package] = Item(package, version=value)
        else:
            items[package] = Item(package, path=str(Path(value).expanduser().resolve()))
    return tuple(sorted(items.values(), key=lambda item: PACKAGES.index(item.package)))


def canonical_stack(spec: str) -> str:
    """``spec`` written the one way cells name it (the module docstring); ``""`` for the default pins."""
    return "+".join(item.spec for item in parse_stack(spec))


def stack_label(spec: str) -> str:
    """What a cell's label shows for a stack: ``keras=3.10.0 torch=2.13.1``."""
    return " ".join(item.label for item in parse_stack(spec))


def check_path_item(item: Item) -> None:
    """``StackError`` unless an ``@`` item's path is a wheel of that package or a checkout of it (a folder with a
    ``pyproject.toml`` or ``setup.py`` and the package's own folder)."""
    path = Path(item.path)
    module = item.package.replace("-", "_")
    if path.suffix == ".whl":
        if not path.is_file():
            raise StackError(f"{item.spec}: no such wheel file.")
        if not path.name.lower().replace("-", "_").startswith(module + "_"):
            raise StackError(f"{item.spec}: a wheel of another package ({path.name}); a {item.package} wheel is "
                             f"named {module}-VERSION-....whl.")
        return
    if not path.is_dir():
        raise StackError(f"{item.spec}: no such folder or wheel file (give a {item.package} checkout or a .whl).")
    if not ((path / "pyproject.toml").is_file() or (path / "setup.py").is_file()) or not (path / module).is_dir():
        raise StackError(f"{item.spec}: not a {item.package} checkout (it needs pyproject.toml or setup.py and a "
                         f"{module}/ folder).")


def installed_from(package: str) -> str | None:
    """The local path a distribution was installed from (PEP 610's ``direct_url.json``), or None."""
    try:
        text = importlib.metadata.distribution(package).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    url = json.loads(text).get("url", "")
    return unquote(urlparse(url).path) if url.startswith("file://") else None


def _same_version(a: str, b: str) -> bool:
    try:
        from packaging.version import Version  # matplotlib's dependency too; no framework
        return Version(a) == Version(b)
    except Exception:  # not a PEP 440 version: compare the text
        return a == b


def environment_stack(prefix=None) -> str | None:
    """The spec the virtualenv at ``prefix`` (default: this process's) was made for, or None outside a stack's."""
    marker = Path(prefix or sys.prefix) / MARKER
    if not marker.is_file():
        return None
    return json.loads(marker.read_text()).get("spec", DEFAULT)


def resolve_stack(spec: str) -> str:
    """The ``stack`` axis's ``resolve``: ``spec`` written the one way cells name it, checked against what this process
    has installed (``check_installed``) before any framework starts and before anything is recorded."""
    spec = canonical_stack(spec)
    check_installed(spec)
    return spec


def check_installed(spec: str) -> None:
    """``StackError`` (one line) unless this process's packages are the stack ``spec`` claims: each ``==`` item's
    version installed, each ``@`` item installed from its path, and, inside a stack's virtualenv, the spec it was made
    for."""
    spec = canonical_stack(spec)
    made_for = environment_stack()
    if made_for is not None and canonical_stack(made_for) != spec:
        raise StackError(f"this Python ({sys.prefix}) is the environment of --stack {made_for or '(default)'!r}, "
                         f"but the cell claims --stack {spec!r}: give the stack its environment was made for.")
    for item in parse_stack(spec):
        try:
            version = importlib.metadata.version(item.package)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if item.version is not None and (version is None or not _same_version(version, item.version)):
            raise StackError(f"--stack {spec!r} says {item.package} {item.version}, but this environment has "
                             f"{item.package} {version or 'not installed'} ({sys.prefix}): run it in the stack's "
                             f"environment (twinbench sweep and twinbench ab make it).")
        if item.path is not None and installed_from(item.package) != item.path:
            raise StackError(f"--stack {spec!r} says {item.package} from {item.path}, but this environment's "
                             f"{item.package} {version or '(not installed)'} came from "
                             f"{installed_from(item.package) or 'the package index'} ({sys.prefix}).")
