"""Checking a name against its valid choices: one error type and one message for models, data and backends.

Every "unknown name" error of twinbench comes from here, in one shape, e.g.
``Unknown dataset 'imagenet'. Valid choices: digits, synthetic, cifar10, mnist.``
"""

from __future__ import annotations

from typing import Any


class UnknownChoiceError(ValueError):
    """A name that is not one of the valid choices; the message lists them on one line."""


def check_choice(kind: str, value: Any, choices) -> None:
    """Raise ``UnknownChoiceError`` unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise UnknownChoiceError(
            f"Unknown {kind} {value!r}. Valid choices: {', '.join(map(str, choices))}."
        )
