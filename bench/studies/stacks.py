"""A stack's environment: a virtualenv that holds only the stack's own packages, over its backend's nox environment.

``ensure_stack_env(spec, env, base_python=...)`` makes (or reuses) ``.nox/stack-<env>-<slug>``:

1. ``python -m venv --without-pip``, from the base environment's Python (the nox environment of the backend, e.g.
   ``.nox/sweep-torch``, which has the project's pins: ``pip install -e .[torch]``);
2. a ``.pth`` file that appends the base environment's site-packages to ``sys.path``: the stack's virtualenv sees
   torch (5.5 GB), TensorFlow or JAX without a copy, and its own site-packages come first, so what it installs wins;
   the base's pip and setuptools serve it too;
3. twinbench installed editable from this repository (``--no-deps``; the base's editable install is not seen, its
   ``.pth`` files are not read from an appended folder);
4. the stack's items installed with pip: ``keras==3.10.0`` with whatever that release needs that the base lacks (pip
   sees the base's packages as installed and adds only the missing or incompatible ones, into the stack's own
   site-packages), a checkout or a wheel from its path;
5. ``twinbench-stack.json`` (``twinbench.backends.stacks.MARKER``): the spec, the base, what pip put in the stack's own
   site-packages (name -> version) and, for a checkout, its git commit. Written last: a virtualenv without it is
   half-made and made again.

A virtualenv whose marker names the same spec and base is reused; a stack with a path (``keras@/path``) is made
anew every time (the checkout may have changed). ``copy="null"`` makes a second, separate environment of the same
stack (``-null``): A' of the null calibration (``twinbench ab``).

Every way a stack can fail to become an environment is one line (``StackEnvError``): a spec that does not parse, a
package the environment does not have, a release the index does not have (its releases named), a path that is not
a checkout or a wheel, anything else pip refuses (its last error line). Imports no framework: pip runs in a child.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from twinbench.backends.environments import ENVIRONMENTS
from twinbench.backends.stacks import (
    DEFAULT,
    MARKER,
    Item,
    StackError,
    canonical_stack,
    check_path_item,
    parse_stack,
)
from twinbench.records import now_iso, write_json_atomic

# The packages a stack may set in each environment (the others are not installed there).
ENV_PACKAGES = {"torch": ("keras", "torch", "torchvision"), "tensorflow": ("keras", "tensorflow", "tf-keras"),
                "jax": ("keras", "jax", "jaxlib")}
REPO = Path(__file__).resolve().parents[2]  # the repository of this (editable) twinbench
PIP_TIMEOUT_S = 900


class StackEnvError(RuntimeError):
    """A stack that cannot become an environment here; one line."""


@dataclass(frozen=True)
class StackEnv:
    """A made environment: its stack spec (canonical), its folder and Python."""

    spec: str
    env: str
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def marker(self) -> dict:
        return json.loads((self.path / MARKER).read_text())


def slug(spec: str) -> str:
    """A folder name for a stack: ``keras-3.10.0``, ``keras-3.10.0_torch-2.13.1``, ``keras-at-keras-1a2b3c4d`` (a
    path: its last part and a hash of the whole), ``default`` for the project's pins."""
    items = parse_stack(spec)
    if not items:
        return "default"
    parts = []
    for item in items:
        if item.version is not None:
            parts.append(f"{item.package}-{item.version}")
        else:
            digest = hashlib.sha1(item.path.encode()).hexdigest()[:8]
            parts.append(f"{item.package}-at-{Path(item.path).name}-{digest}")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts))


def check_stack(spec: str, env: str) -> tuple[Item, ...]:
    """The items of ``spec`` for environment ``env``, each checked without pip (``StackEnvError``, one line)."""
    if env not in ENV_PACKAGES:
        raise StackEnvError(f"Unknown environment {env!r}. Valid choices: {', '.join(ENVIRONMENTS)}.")
    try:
        items = parse_stack(spec)
        for item in items:
            if item.package not in ENV_PACKAGES[env]:
                raise StackError(f"the {env} environment has no {item.package}: a stack there may set "
                                 f"{', '.join(ENV_PACKAGES[env])}. Received: --stack {spec!r}.")
            if item.path is not None:
                check_path_item(item)
    except StackError as err:
        raise StackEnvError(str(err)) from None
    return items


def env_dir(spec: str, env: str, *, root=".nox", copy: str = "") -> Path:
    """``ROOT/stack-<env>-<slug>`` (``-<copy>`` appended for a second environment of the stack)."""
    return Path(root) / f"stack-{env}-{slug(spec)}{'-' + copy if copy else ''}"


def _run(argv: list[str], *, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise StackEnvError(f"{what}: still running after {PIP_TIMEOUT_S} s, stopped") from None
    except OSError as err:
        raise StackEnvError(f"{what}: cannot start {argv[0]} ({err.strerror or err})") from None


def _site_packages(python: str) -> list[str]:
    # Its own site-packages and those it sees through .pth files of its own (a base that is layered itself).
    out = _run([python, "-c", "import json, sys, sysconfig; p = sysconfig.get_paths(); print(json.dumps("
                              "[p['purelib'], p['platlib'], *(d for d in sys.path if d.endswith(('site-packages', "
                              "'dist-packages')))]))"], what="the base environment")
    if out.returncode:
        raise StackEnvError(f"the base environment's Python {python} does not run: {_last_error(out)}")
    return list(dict.fromkeys(json.loads(out.stdout)))


def _last_error(out: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (out.stderr + "\n" + out.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")] or lines
    return errors[-1].removeprefix("ERROR: ") if errors else f"exit code {out.returncode}"


def releases(python: str, package: str) -> list[str]:
    """The versions of ``package`` the index has (``pip index versions``), newest first; [] if it cannot say."""
    out = _run([python, "-m", "pip", "index", "versions", package], what=f"pip index versions {package}")
    match = re.search(r"Available versions:\s*(.+)", out.stdout)
    return [v.strip() for v in match.group(1).split(",")] if match else []


def _install_error(out: subprocess.CompletedProcess, item: Item, python: str, spec: str) -> StackEnvError:
    text = out.stderr + out.stdout
    if item.version is not None and re.search(r"No matching distribution found for|Could not find a version", text):
        found = releases(python, item.package)
        major = item.version.split(".")[0]
        same_major = [v for v in found if v.split(".")[0] == major] or found
        choices = f"; the index has {', '.join(same_major[:50])}" if same_major else ""
        return StackEnvError(f"{item.spec}: no such release of {item.package}{choices}.")
    return StackEnvError(f"pip could not install {item.spec} (--stack {spec!r}): {_last_error(out)}")


def _reusable(path: Path, spec: str, base: list[str], items) -> bool:
    marker = path / MARKER
    if any(item.path is not None for item in items) or not marker.is_file():
        return False
    made = json.loads(marker.read_text())
    return made.get("spec") == spec and made.get("base_site_packages") == base and (path / "bin" / "python").exists()


def _own_packages(python: str, path: Path) -> dict[str, str]:
    """What pip put in the stack's own site-packages: name -> version."""
    code = ("import importlib.metadata as m, json, sys, sysconfig; own = sysconfig.get_paths()['purelib']; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions(path=[own])}))")
    out = _run([python, "-c", code], what="listing the stack's packages")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _checkout_commit(item: Item) -> str | None:
    if item.path is None or not Path(item.path).is_dir():
        return None
    out = _run(["git", "-C", item.path, "rev-parse", "--show-toplevel", "HEAD"], what="git rev-parse")
    lines = out.stdout.split()
    if out.returncode or len(lines) != 2 or Path(lines[0]).resolve() != Path(item.path):
        return None  # not a git checkout of its own (a folder inside another repository has that one's commit)
    return lines[1]


def ensure_stack_env(spec: str, env: str, *, base_python: str, root=".nox", copy: str = "",
                     log=print) -> StackEnv:
    """The environment of stack ``spec`` for backend environment ``env``, made over ``base_python``'s (module
    docstring); reused when it was made for the same spec and base. ``StackEnvError`` (one line) where it cannot be."""
    spec = canonical_stack(spec) if spec != "default" else DEFAULT
    items = check_stack(spec, env)
    base = _site_packages(base_python)
    path = env_dir(spec, env, root=root, copy=copy)
    made = StackEnv(spec, env, path)
    if _reusable(path, spec, base, items):
        log(f"[stack] {spec or '(default pins)'} ({env}): {path} made already, reused")
        return made
    log(f"[stack] {spec or '(default pins)'} ({env}): making {path} over {base[0]}")
    shutil.rmtree(path, ignore_errors=True)
    out = _run([base_python, "-m", "venv", "--without-pip", str(path)], what=f"making {path}")
    if out.returncode:
        raise StackEnvError(f"python -m venv {path} failed: {_last_error(out)}")
    own = _run([made.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], what="the new venv")
    (Path(own.stdout.strip()) / "zz_twinbench_base.pth").write_text("".join(f"{folder}\n" for folder in base))
    pip = [made.python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    out = _run([*pip, "--no-deps", "--no-build-isolation", "-e", str(REPO)], what="installing twinbench")
    if out.returncode:
        raise StackEnvError(f"installing twinbench into {path} failed: {_last_error(out)}")
    for item in items:
        out = _run([*pip, item.requirement], what=f"pip install {item.requirement}")
        if out.returncode:
            shutil.rmtree(path, ignore_errors=True)
            raise _install_error(out, item, base_python, spec)
    marker = {"spec": spec, "env": env, "base_python": base_python, "base_site_packages": base,
              "own_packages": _own_packages(made.python, path), "created": now_iso(),
              "checkouts": {item.package: {"path": item.path, "commit": _checkout_commit(item)}
                            for item in items if item.path is not None}}
    write_json_atomic(path / MARKER, marker)
    return made
