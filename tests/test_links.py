"""Every relative link in the README and docs/ resolves, and every ``nox -s NAME`` the project names is a session.

Links: ``[text](target)``, images and ``[label]: target`` definitions in README.md and docs/**/*.md, outside code;
a target is a file or folder inside the repository (anchors are not checked). Sessions: the names after ``nox -s``
in those pages and in the code, against noxfile.py's ``@nox.session`` functions. Both read text only: no framework.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import unquote

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CODE = [ROOT / "noxfile.py", *sorted(p for folder in ("models", "backends", "data", "bench", "tests", "tools")
                                     for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".sh"))]

_FENCED = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_INLINE = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...
_NOX_SESSION = re.compile(r"nox (?:-s|--sessions?) +[\"'\\]*([A-Za-z_]\w*)")


def relative_links(page: Path) -> list[str]:
    """The relative link targets of a Markdown page, anchors and queries cut off (code blocks and spans skipped)."""
    text = _CODE_SPAN.sub("code", _FENCED.sub("", page.read_text()))
    targets = [m.group(1) for pattern in (_INLINE, _DEFINITION) for m in pattern.finditer(text)]
    paths = [unquote(re.split(r"[#?]", t)[0]) for t in targets if not _SCHEME.match(t)]
    return [p for p in paths if p]


def test_every_relative_link_resolves_inside_the_repository():
    broken = []
    for page in PAGES:
        for target in relative_links(page):
            resolved = (page.parent / target).resolve()
            if not resolved.exists() or not resolved.is_relative_to(ROOT):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links that lead nowhere (or out of the repository):\n" + "\n".join(broken)


def nox_sessions() -> set[str]:
    """The sessions noxfile.py defines: each ``@nox.session`` function's name (or its ``name=``)."""
    sessions = set()
    for node in ast.walk(ast.parse((ROOT / "noxfile.py").read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if ast.unparse(target) == "nox.session":
                named = [k.value.value for k in (call.keywords if call else []) if k.arg == "name"]
                sessions.add(named[0] if named else node.name)
    return sessions


def test_every_named_nox_session_exists():
    sessions = nox_sessions()
    assert {"tests", "lint", "parity_fixtures"} <= sessions, sessions
    missing = sorted({f"{path.relative_to(ROOT)}: nox -s {name}" for path in (*PAGES, *CODE)
                      if path != Path(__file__).resolve()
                      for name in _NOX_SESSION.findall(path.read_text()) if name not in sessions})
    assert not missing, f"sessions that noxfile.py does not define ({', '.join(sorted(sessions))}):\n" + \
        "\n".join(missing)
