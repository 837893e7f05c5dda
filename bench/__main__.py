"""Entry point of ``python -m bench``."""

import os
import sys

# TensorFlow's C++ start-up chatter (INFO lines on stderr) would bury twinbench's one-line messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.cli import main  # noqa: E402

sys.exit(main())
