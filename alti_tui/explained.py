"""What an explanation explains, in the explorer's words (plain data in, text out; no torch).

The engine records what it explained in ``Explanation.target`` (a dict, see
:meth:`alti.targets.Target.to_dict`): a class or a token, an optional foil, and
the quantity read (a probability, or a logit difference against a foil).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alti.results import Explanation

PROBABILITY = "probability"
LOGIT_DIFFERENCE = "logit difference"


def _name(entry: dict[str, Any]) -> str:
    return str(entry.get("label", entry.get("token", "")))


def quoted(name: str, kind: str) -> str:
    """A class as it is, a token in quotes (its leading space shows)."""
    return name if kind == "class" else repr(name)


def explained(explanation: Explanation) -> str:
    """``explaining ' Paris' against ' London'``, ``explaining p(' Paris')``, ``explaining p(positive)``."""
    target = explanation.target
    if not target:
        return f"explaining p({explanation.prediction.label})"
    kind = target.get("kind", "class")
    name = quoted(_name(target["target"]), kind)
    foil = target.get("foil")
    if foil:
        return f"explaining {name} against {quoted(_name(foil), kind)}"
    return f"explaining p({name})"


def is_default(explanation: Explanation) -> bool:
    """True when the explanation explains the predicted class or token, with no foil."""
    target = explanation.target
    if not target:
        return True
    entry = target["target"]
    index = entry.get("index", entry.get("id"))
    return not target.get("foil") and index == explanation.prediction.index


def curve_quantity(explanation: Explanation | None) -> tuple[str, str]:
    """``(quantity, label)`` of what the deletion curves read: ``("probability", "p(' Paris')")``
    or ``("logit difference", "logit(' Paris') − logit(' London')")``."""
    if explanation is None:
        return PROBABILITY, ""
    target = explanation.target
    if not target:
        return PROBABILITY, f"p({explanation.prediction.label})"
    kind = target.get("kind", "class")
    name = quoted(_name(target["target"]), kind)
    foil = target.get("foil")
    if kind == "masked_token" and foil:
        return PROBABILITY, f"p({name} vs {quoted(_name(foil), kind)})"
    if foil:
        return LOGIT_DIFFERENCE, f"logit({name}) − logit({quoted(_name(foil), kind)})"
    return PROBABILITY, f"p({name})"


def target_spec(explanation: Explanation) -> tuple[str | None, str | None]:
    """The explanation's target and foil as the engine takes them again (``id:N`` for tokens)."""
    target = explanation.target
    if not target:
        return None, None

    def spec(entry):
        if entry is None:
            return None
        return str(entry["label"]) if "label" in entry else f"id:{int(entry['id'])}"

    return spec(target["target"]), spec(target.get("foil"))
