"""Every relative link in the README and docs/ resolves, every docs page is reachable, and every ``nox -s NAME`` the
project names is a session.

Links: ``[text](target)``, images and ``[label]: target`` definitions in README.md and docs/**/*.md, outside code;
a target is a file or folder inside the repository, and its ``#anchor`` (on a Markdown page, or ``#anchor`` alone on
the same page) is a heading of that page as GitHub names it (``## Feed vs compute: what`` -> ``#feed-vs-compute-what``;
a repeated heading gets ``-1``, ``-2``) or an ``<a id="...">`` / ``<a name="...">`` there. Pages: every Markdown page
under docs/ (the committed records' folders aside) is reached from README.md by following links. Sessions: the
names after ``nox -s`` in those pages and in the code, against noxfile.py's ``@nox.session`` functions. All read text
only: no framework, well under a second.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CODE = [ROOT / "noxfile.py", *sorted(p for folder in ("models", "backends", "data", "bench", "tests", "tools")
                                     for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".sh"))]
RECORDS = ROOT / "docs" / "measurements"  # committed records and their notes: linked as folders, not as pages

_FENCED = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_INLINE = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...
_NOX_SESSION = re.compile(r"nox (?:-s|--sessions?) +[\"'\\]*([A-Za-z_]\w*)")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.M)
_HTML_ANCHOR = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)=\"([^\"]+)\"", re.I)


def _prose(text: str) -> str:
    """The page without fenced code blocks (a ``# comment`` in a bash block is no heading, a link there no link)."""
    return _FENCED.sub("", text)


def relative_links(page: Path) -> list[str]:
    """The relative link targets of a Markdown page, queries cut off, anchors kept (code blocks and spans skipped)."""
    text = _CODE_SPAN.sub("code", _prose(page.read_text()))
    targets = [m.group(1) for pattern in (_INLINE, _DEFINITION) for m in pattern.finditer(text)]
    return [t.split("?")[0] for t in targets if not _SCHEME.match(t) and t.split("?")[0]]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: the rendered text (code, links and emphasis reduced to their words),
    lower case, without punctuation but ``-`` and ``_``, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [words](target) -> words
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*{1,3})(.+?)\1", r"\2", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """Every anchor a Markdown page has: its headings' slugs (repeats numbered as GitHub does) and HTML anchors."""
    text = _prose(page.read_text())
    seen: dict[str, int] = {}
    found = set(_HTML_ANCHOR.findall(text))
    for heading in _HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def broken_links(pages: list[Path], root: Path) -> list[str]:
    """``page: target (why)`` for every relative link of ``pages`` that leads nowhere: no such file or folder, out
    of ``root``, or an anchor the target page does not have."""
    broken = []
    for page in pages:
        for target in relative_links(page):
            path, _, anchor = target.partition("#")
            resolved = (page.parent / unquote(path)).resolve() if path else page.resolve()
            where = f"{page.relative_to(root)}: {target}"
            if not resolved.is_relative_to(root):
                broken.append(f"{where} (outside the repository)")
            elif not resolved.exists():
                broken.append(f"{where} (no such file or folder)")
            elif anchor and resolved.suffix == ".md" and unquote(anchor) not in anchors(resolved):
                broken.append(f"{where} (no heading or anchor '#{anchor}' in {resolved.relative_to(root)})")
    return broken


def unreachable_pages(start: Path, pages: list[Path], root: Path) -> list[str]:
    """The ``pages`` that following relative links from ``start`` never reaches (a link to a folder reaches its
    index.md or README.md)."""
    reached, todo = set(), [start.resolve()]
    while todo:
        page = todo.pop()
        if page in reached or not page.is_file() or page.suffix != ".md":
            continue
        reached.add(page)
        for target in relative_links(page):
            path = target.partition("#")[0]
            if not path:
                continue
            resolved = (page.parent / unquote(path)).resolve()
            if resolved.is_dir():
                todo += [resolved / "index.md", resolved / "README.md"]
            else:
                todo.append(resolved)
    return sorted(str(p.relative_to(root)) for p in pages if p.resolve() not in reached)


def test_every_relative_link_resolves_inside_the_repository():
    broken = broken_links(PAGES, ROOT)
    assert not broken, "links that lead nowhere (or out of the repository):\n" + "\n".join(broken)


def test_every_docs_page_is_reached_from_the_readme_and_listed_in_the_index():
    pages = [p for p in PAGES if not p.is_relative_to(RECORDS)]
    missing = unreachable_pages(ROOT / "README.md", pages, ROOT)
    assert not missing, "pages no link leads to (list them in docs/index.md):\n" + "\n".join(missing)
    index = ROOT / "docs" / "index.md"
    listed = {(index.parent / target.partition("#")[0]).resolve() for target in relative_links(index)}
    unlisted = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p != index and p.resolve() not in listed)
    assert not unlisted, f"docs/index.md does not list: {', '.join(unlisted)}"


def test_the_link_check_finds_broken_links_and_anchors(tmp_path):
    """The check of the check: a synthetic manual with one good link of each kind and one broken of each kind."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "# Front\n\n## Two commands: `nox -s compare`\n\n## Two commands: `nox -s compare`\n\n"
        "[ok](docs/a.md) [ok](docs/a.md#where-a-steps-time-goes-twinbench-trace) [ok](#two-commands-nox--s-compare-1)\n"
        "[ok](docs/) [ok][def] [gone](docs/missing.md) [bad anchor](docs/a.md#nowhere) [bad self](#front-page)\n"
        "[out](../outside.md) `[in a span](docs/nope.md)`\n\n```bash\n# not a heading\n[in code](docs/nope.md)\n```\n\n"
        "[def]: docs/a.md#anchored\n")
    (tmp_path / "docs" / "a.md").write_text(
        "# A\n\n### Where a step's time goes: `twinbench trace`\n\n<a id=\"anchored\"></a>\n\n[up](../README.md#front)\n")
    (tmp_path / "docs" / "orphan.md").write_text("# Nobody links here\n")
    found = broken_links([tmp_path / "README.md", tmp_path / "docs" / "a.md"], tmp_path)
    assert found == ["README.md: docs/missing.md (no such file or folder)",
                     "README.md: docs/a.md#nowhere (no heading or anchor '#nowhere' in docs/a.md)",
                     "README.md: #front-page (no heading or anchor '#front-page' in README.md)",
                     "README.md: ../outside.md (outside the repository)"]
    pages = [tmp_path / "README.md", tmp_path / "docs" / "a.md", tmp_path / "docs" / "orphan.md"]
    assert unreachable_pages(tmp_path / "README.md", pages, tmp_path) == ["docs/orphan.md"]
    assert slug("Measured: `cifar_cnn` on CPU") == "measured-cifar_cnn-on-cpu"
    assert slug("Carry a model across frameworks, export it") == "carry-a-model-across-frameworks-export-it"


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
