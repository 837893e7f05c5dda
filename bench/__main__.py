"""Entry point of ``python -m twinbench`` and of the ``twinbench`` command (``[project.scripts]`` in pyproject.toml)."""

import os
import sys


def run() -> None:
    """Run the command line with ``sys.argv`` and exit with its code."""
    # TensorFlow's C++ start-up chatter (INFO lines on stderr) would bury twinbench's one-line messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from twinbench.cli import main

    sys.exit(main())


if __name__ == "__main__":
    run()
