"""What is explained: which row of the model is read, and which quantity of its output.

Three kinds of target, one per kind of head (:class:`alti.adapters.Head`):

- ``class``: a class of a sequence classifier, read where its head reads
  (``[CLS]``, the last non-pad token of a decoder classifier, or the mean of
  the rows for ModernBERT's mean pooling).  The quantity is the class's
  probability, or ``logit[class] - logit[foil]`` when a foil class is given.
- ``next_token``: the next token of a causal LM, read at the last token.  The
  target defaults to the predicted token; the quantity is ``p(target)``, or
  ``logit[target] - logit[foil]`` with a foil.
- ``masked_token``: a masked LM at its one ``[MASK]`` (subject-verb
  agreement): the target form against the foil form, as
  ``p(target) = softmax(logit[target], logit[foil])[0]``.

A :class:`Target` is resolved for one input (ids, position, token texts); the
explainer asks it which row to read (:func:`position`) and which quantity to
compute from that row's logits (:func:`quantity`).  Nothing here runs a model (nor imports torch at import time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alti.errors import InputError, UnsupportedModelError
from alti.results import Prediction

KINDS = ("class", "next_token", "masked_token")
KIND_OF_TASK = {"classifier": "class", "causal_lm": "next_token", "masked_lm": "masked_token"}
TOP_TOKENS = 10


@dataclass(frozen=True)
class Target:
    """A resolved target: a class index or vocabulary id, an optional foil, the row read.

    ``position`` is the row of the model's output that is explained, or None for
    the mean of every row (mean pooling).
    """

    kind: str
    index: int
    foil: int | None = None
    position: int | None = 0
    label: str = ""  # the class label or the token's text
    foil_label: str | None = None

    @property
    def quantity(self) -> str:
        """What gradients, occlusion and deletion curves read."""
        if self.kind == "masked_token":
            return "p(target) against the foil"
        return "probability" if self.foil is None else "logit difference"

    @property
    def contrastive(self) -> bool:
        return self.foil is not None

    def to_dict(self) -> dict[str, Any]:
        key = "label" if self.kind == "class" else "token"
        ident = "index" if self.kind == "class" else "id"
        return {
            "kind": self.kind,
            "target": {key: self.label, ident: int(self.index)},
            "foil": None if self.foil is None else {key: self.foil_label, ident: int(self.foil)},
            "position": self.position,
            "quantity": self.quantity,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        target, foil = data["target"], data.get("foil")

        def split(entry):
            return int(entry.get("index", entry.get("id"))), entry.get("label", entry.get("token"))

        index, label = split(target)
        foil_index, foil_label = split(foil) if foil else (None, None)
        return cls(data["kind"], index, foil_index, data.get("position"), label or "", foil_label)


def as_target(target: Target | int) -> Target:
    """A target; a plain int is a class index (read where the classifier's head reads)."""
    if isinstance(target, Target):
        return target
    return Target("class", int(target), position=0)


@dataclass(frozen=True)
class Request:
    """What the user asked for, before it is resolved against one input.

    ``target`` / ``foil``: for classifiers a class index or label; for LMs a
    vocabulary id, ``"id:1234"``, or a token as the tokenizer writes a
    continuation (``" Paris"``, leading space included).  None: the predicted
    class or token (a foil stays None).
    """

    target: int | str | None = None
    foil: int | str | None = None


def kind_for(task: str) -> str:
    try:
        return KIND_OF_TASK[task]
    except KeyError:
        raise UnsupportedModelError(
            "this model has no head to explain (a bare encoder); load a sequence classifier, a causal LM or a masked LM"
        ) from None


def token_text(tokenizer, token_id: int) -> str:
    """A vocabulary entry as text (``" Paris"``), for labels and the JSON."""
    decode = getattr(tokenizer, "decode", None)
    if decode is not None:
        return decode([int(token_id)])
    return tokenizer.convert_ids_to_tokens([int(token_id)])[0]


def token_id(tokenizer, spec: int | str, vocab_size: int, role: str) -> tuple[int, str | None]:
    """``(id, note)`` of a target or foil token; ``note`` says when only the first piece is used."""
    if isinstance(spec, (int, np.integer)) or (isinstance(spec, str) and spec.startswith("id:")):
        try:
            value = int(spec[3:]) if isinstance(spec, str) else int(spec)
        except ValueError:
            raise InputError(f"the {role} {spec!r}: write id:NUMBER, e.g. id:1234") from None
        if not 0 <= value < vocab_size:
            raise InputError(f"the {role} id {value} is outside the vocabulary (0-{vocab_size - 1})")
        return value, None
    if not isinstance(spec, str) or not spec:
        raise InputError(f"the {role} is empty; give a token such as ' Paris' or id:1234")
    pieces = tokenizer(spec, add_special_tokens=False)["input_ids"]
    if not pieces:
        raise InputError(f"the {role} {spec!r} is no token for this tokenizer")
    note = None
    if len(pieces) > 1:
        shown = " + ".join(repr(token_text(tokenizer, p)) for p in pieces)
        note = f"the {role} {spec!r} is {len(pieces)} tokens ({shown}); using the first, {token_text(tokenizer, pieces[0])!r}"
    return int(pieces[0]), note


def class_index(spec: int | str, labels: Sequence[str], role: str) -> int:
    """A class given by index or by label."""
    if isinstance(spec, str) and not spec.lstrip("-").isdigit():
        by_case = {label.lower(): i for i, label in enumerate(labels)}
        if spec.lower() not in by_case:
            raise InputError(f"the {role} {spec!r} is not a class of this model; its classes: {', '.join(labels)}")
        return by_case[spec.lower()]
    index = int(spec)
    if not 0 <= index < len(labels):
        raise InputError(
            f"target class {index} is out of range; this model has {len(labels)} classes: {', '.join(labels)}"
        )
    return index


def position(reads: str, ids: Sequence[int], pad_id: int | None, mask_id: int | None) -> int | None:
    """The row a head reads in ``ids`` (no padding): None means the mean of all rows."""
    if reads == "first":
        return 0
    if reads == "mean":
        return None
    if reads == "mask":
        found = [j for j, t in enumerate(ids) if t == mask_id]
        if len(found) != 1:
            raise InputError(
                f"the text has {len(found)} mask tokens; a masked LM is explained at exactly one "
                "(write it where the word to predict goes)"
            )
        return found[0]
    # "last": the last token, or for a decoder classifier the last that is not padding,
    # as transformers' *ForSequenceClassification reads it
    real = [j for j, t in enumerate(ids) if t != pad_id]
    return real[-1] if real else len(ids) - 1


def quantity(row_logits, target: Target):
    """The explained quantity (B,) from the logits of the row read (B, C or V); differentiable."""
    import torch

    if target.kind == "masked_token":
        pair = row_logits[:, [target.index, target.foil]]
        return torch.softmax(pair, dim=-1)[:, 0]
    if target.foil is not None:
        return row_logits[:, target.index] - row_logits[:, target.foil]
    return torch.softmax(row_logits, dim=-1)[:, target.index]


def prediction(row_logits, kind: str, labels: Sequence[str], tokenizer, target: Target | None = None) -> Prediction:
    """The prediction at the row read, from its logits (C or V,)."""
    import torch

    logits = row_logits.double()
    if kind == "class":
        probabilities = torch.softmax(logits, -1).cpu().numpy()
        index = int(probabilities.argmax())
        return Prediction(label=labels[index], index=index, probabilities=probabilities, labels=list(labels))
    if kind == "masked_token" and target is not None:
        pair = torch.softmax(logits[[target.index, target.foil]], -1).cpu().numpy()
        index = int(pair.argmax())
        names = [target.label, target.foil_label or ""]
        ids = [target.index, target.foil]
        return Prediction(label=names[index], index=ids[index], probabilities=pair, labels=names, ids=ids)
    probabilities = torch.softmax(logits, -1)
    top = torch.topk(probabilities, min(TOP_TOKENS, probabilities.shape[-1]))
    ids = [int(i) for i in top.indices]
    return Prediction(
        label=token_text(tokenizer, ids[0]),
        index=ids[0],
        probabilities=top.values.cpu().numpy(),
        labels=[token_text(tokenizer, i) for i in ids],
        ids=ids,
    )


def ids_of(
    kind: str,
    request: Request,
    predicted: int | None,
    labels: Sequence[str],
    tokenizer,
    vocab_size: int,
) -> tuple[int | None, int | None, list[str]]:
    """``(target, foil, notes)``: the class indices or vocabulary ids a request names, checked.

    ``predicted`` (the index or id predicted at the row read) stands for a target
    that is not given; a masked-token target needs both forms.  ``notes`` say
    when a text of several pieces gives its first.
    """
    notes: list[str] = []
    if kind == "class":
        index = predicted if request.target is None else class_index(request.target, labels, "target")
        foil = None if request.foil is None else class_index(request.foil, labels, "foil")
        if foil is not None and foil == index:
            raise InputError("the target and the foil are the same class; choose another foil")
        return index, foil, notes

    def resolve_token(spec, role):
        value, note = token_id(tokenizer, spec, vocab_size, role)
        if note and kind == "masked_token":
            raise InputError(f"the {role} {spec!r} is several tokens for this model; a masked token is one")
        if note:
            notes.append(note)
        return value

    if kind == "masked_token" and (request.target is None or request.foil is None):
        raise InputError("a masked LM is explained as a target against a foil (e.g. two verb forms): give both")
    index = predicted if request.target is None else resolve_token(request.target, "target")
    foil = None if request.foil is None else resolve_token(request.foil, "foil")
    if foil is not None and foil == index:
        raise InputError("the target and the foil are the same token; choose another foil")
    return index, foil, notes


def resolve(
    kind: str,
    request: Request,
    predicted: Prediction | None,
    position_read: int | None,
    labels: Sequence[str],
    tokenizer,
    vocab_size: int,
) -> tuple[Target, list[str]]:
    """The target of one input and the notes to show (first piece of a multi-token text).

    ``predicted`` (the prediction at the row read) gives the default target; a
    masked-token target needs none, since both forms are always given.
    """
    index, foil, notes = ids_of(
        kind, request, None if predicted is None else predicted.index, labels, tokenizer, vocab_size
    )
    if kind == "class":
        return Target(kind, index, foil, position_read, labels[index], None if foil is None else labels[foil]), notes
    return (
        Target(
            kind,
            index,
            foil,
            position_read,
            token_text(tokenizer, index),
            None if foil is None else token_text(tokenizer, foil),
        ),
        notes,
    )
