"""Compress the profiler timelines of results directories: every plain ``*.timeline.json`` sidecar becomes a
``*.timeline.json.gz`` holding exactly the same JSON, and its record names the new file
(``twinbench.records.compress_timelines``: written atomically, read back and compared before the plain file goes).

Runs since the change write compressed sidecars themselves; this converts results from before it, e.g. a study
measured with an older checkout before it is committed under docs/measurements. Safe to run again: a converted
directory is left as it is.

    python tools/compress_timelines.py docs/measurements

Imports no framework.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twinbench.records import PLAIN_TIMELINE_SUFFIX, RecordError, compress_timelines  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directories", nargs="+", type=Path, help="results directories (searched recursively)")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.directories if not d.is_dir()]
    if missing:
        parser.error(f"not a directory: {', '.join(missing)}")
    before = sum(path.stat().st_size for d in args.directories for path in d.rglob("*" + PLAIN_TIMELINE_SUFFIX))
    try:
        compressed = compress_timelines(*args.directories)
    except RecordError as err:
        print(f"compress_timelines: {err}", file=sys.stderr)
        return 1
    after = sum(path.stat().st_size for path in compressed)
    print(f"{len(compressed)} timeline(s) compressed: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
