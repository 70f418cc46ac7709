"""What an explanation explains, in the explorer's words (plain data in, text out; no torch).

The engine records what it explained in ``Explanation.target`` (an
:class:`alti.targets.Target`, which words itself); explanations made without one (a
classifier's prediction) read as their predicted class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alti.targets import PROBABILITY

if TYPE_CHECKING:
    from alti.results import Explanation


def explained(explanation: Explanation) -> str:
    """``explaining ' Paris' against ' London'``, ``explaining p(' Paris')``, ``explaining p(positive)``."""
    if explanation.target is None:
        return f"explaining p({explanation.prediction.label})"
    return explanation.target.describe()


def is_default(explanation: Explanation) -> bool:
    """True when the explanation explains the predicted class or token, with no foil."""
    return explanation.target is None or explanation.target.is_default(explanation.prediction)


def curve_quantity(explanation: Explanation | None) -> tuple[str, str]:
    """``(quantity, label)`` of what the deletion curves read: ``("probability", "p(' Paris')")``
    or ``("logit difference", "logit(' Paris') − logit(' London')")``."""
    if explanation is None:
        return PROBABILITY, ""
    if explanation.target is None:
        return PROBABILITY, f"p({explanation.prediction.label})"
    return explanation.target.curve_label()


def target_spec(explanation: Explanation) -> tuple[str | None, str | None]:
    """The explanation's target and foil as the engine takes them again (``id:N`` for tokens)."""
    if explanation.target is None:
        return None, None
    return explanation.target.spec()
