"""What is explained: which row of the model is read, and which quantity of its output.

One class per kind of target, each registered under the name that run files and JSON
record (``explained.kind``), and each owning everything that depends on the kind: the row
it is read at, the quantity computed from that row's logits, the prediction shown, how a
request (``--target`` / ``--foil``) resolves against one input, how it is described to
people, and its dict round-trip.

- :class:`ClassTarget`: a class of a sequence classifier, read where its head reads
  (``[CLS]``, the last non-pad token of a decoder classifier, or the mean of the rows for
  ModernBERT's mean pooling).  The quantity is the class's probability, or
  ``logit[class] - logit[foil]`` when a foil class is given.
- :class:`NextTokenTarget`: the next token of a causal LM, read at the last token.  The
  target defaults to the predicted token; the quantity is ``p(target)``, or
  ``logit[target] - logit[foil]`` with a foil.
- :class:`MaskedTokenTarget`: a masked LM at its one ``[MASK]`` (subject-verb agreement):
  the target form against the foil form, as ``p(target) = softmax(logit[target],
  logit[foil])[0]``.

Outside this module no code compares kind names: it asks a target (or its type) instead.
A new kind is a subclass registered with :func:`register` (see CONTRIBUTING.md).  Nothing
here runs a model, and torch is imported only inside the functions that compute on logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from alti.errors import InputError, UnsupportedModelError
from alti.results import Prediction

TOP_TOKENS = 10
PROBABILITY = "probability"
LOGIT_DIFFERENCE = "logit difference"
LOG_PROBABILITY = "log-probability"


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


@dataclass(frozen=True)
class Target:
    """A resolved target: a class index or vocabulary id, an optional foil, the row read.

    ``position`` is the row of the model's output that is explained, or None for the
    mean of every row (mean pooling).  Subclasses set the class attributes below and
    override what differs.
    """

    #: the name recorded in files (``explained.kind``); the registry's key
    kind: ClassVar[str]
    #: the head (:attr:`alti.adapters.Head.task`) whose predictions this kind explains
    task: ClassVar[str]
    #: what a whole run of this kind explains, in words (the HTML report's "explains")
    title: ClassVar[str]
    #: the prediction's heading where its entries are shown
    heading: ClassVar[str]
    #: where the explained row is, as the matrix heading says it
    row_note: ClassVar[str]
    #: the heading of a list of targets to choose from
    choices_heading: ClassVar[str]
    #: a too-long input keeps its end, which the prediction depends on (else its start)
    keeps_end: ClassVar[bool] = False
    #: the targets are vocabulary tokens (shown quoted, leading space visible), not classes
    tokens: ClassVar[bool] = True
    #: a dataset's target/foil columns say what each sample explains (language models)
    per_sample: ClassVar[bool] = True
    #: deletion curves may replace tokens by the mask token (not where a mask marks the row read)
    mask_deletion: ClassVar[bool] = True

    index: int
    foil: int | None = None
    position: int | None = 0
    label: str = ""  # the class label or the token's text
    foil_label: str | None = None

    # ------------------------------------------------------------ what is read
    @property
    def quantity(self) -> str:
        """What gradients, occlusion and deletion curves read."""
        return PROBABILITY if self.foil is None else LOGIT_DIFFERENCE

    @property
    def contrastive(self) -> bool:
        return self.foil is not None

    def value(self, row_logits):
        """The explained quantity (B,) from the logits of the row read (B, C or V); differentiable."""
        import torch

        if self.foil is not None:
            return row_logits[:, self.index] - row_logits[:, self.foil]
        return torch.softmax(row_logits, dim=-1)[:, self.index]

    def row_in(self, ids: Sequence[int], mask_id: int | None) -> int | None:
        """Where this target is read in ``ids``, an input of the explained text with tokens
        deleted or replaced."""
        return self.position

    def rows_in(self, ids: Sequence[int], mask_id: int | None) -> list[int | None]:
        """Every row read in ``ids`` (one, but for a whole answer: one per answer token)."""
        return [self.row_in(ids, mask_id)]

    def value_of_rows(self, rows_logits):
        """The explained quantity (B,) from the logits of every row read (B, R, C or V)."""
        return self.value(rows_logits[:, 0])

    def keeps(self, keep: np.ndarray) -> np.ndarray:
        """``keep`` (the special tokens) with the tokens deletion curves must never delete
        for this target added."""
        return keep

    def scored(self, n: int) -> int:
        """How many of an input's ``n`` tokens the JSON gives scores for (those that can
        explain something: all, but for an answer's last token)."""
        return n

    def answer(self, tokens: Sequence[str]) -> dict[str, Any] | None:
        """The JSON's ``answer`` entry (None but for a whole answer)."""
        return None

    # ------------------------------------------------------------ in words
    def quote(self, name: str) -> str:
        """A class as it is, a token in quotes (its leading space shows)."""
        return repr(name) if self.tokens else name

    @property
    def name(self) -> str:
        return self.quote(self.label)

    @property
    def foil_name(self) -> str | None:
        return None if self.foil is None else self.quote(self.foil_label or "")

    def describe(self) -> str:
        """``explaining ' Paris' against ' London'``, ``explaining p(' Paris')``."""
        if self.foil is not None:
            return f"explaining {self.name} against {self.foil_name}"
        return f"explaining p({self.name})"

    def curve_label(self) -> tuple[str, str]:
        """``(quantity, label)`` of what deletion curves read: ``("probability", "p(' Paris')")``
        or ``("logit difference", "logit(' Paris') − logit(' London')")``."""
        if self.foil is not None:
            return LOGIT_DIFFERENCE, f"logit({self.name}) − logit({self.foil_name})"
        return PROBABILITY, f"p({self.name})"

    def protocol_description(self) -> str:
        """The ``target`` entry of a faithfulness protocol: what the curves read."""
        what = "target token (default: predicted)"
        return f"logit difference of the {what} and the foil" if self.foil is not None else f"probability of the {what}"

    def spec(self) -> tuple[str | None, str | None]:
        """The target and the foil as :class:`Request` takes them again (``id:N`` for tokens)."""
        return f"id:{self.index}", None if self.foil is None else f"id:{self.foil}"

    def is_default(self, prediction: Prediction) -> bool:
        """Whether this explains the predicted class or token, with no foil."""
        return self.foil is None and self.index == prediction.index

    # ------------------------------------------------------------ plain data
    def to_dict(self) -> dict[str, Any]:
        key, ident = ("token", "id") if self.tokens else ("label", "index")
        return {
            "kind": self.kind,
            "target": {key: self.label, ident: int(self.index)},
            "foil": None if self.foil is None else {key: self.foil_label, ident: int(self.foil)},
            "position": self.position,
            "quantity": self.quantity,
        }

    @classmethod
    def entry_problem(cls, target: Any, foil: Any) -> str | None:
        """What makes the ``target`` and ``foil`` entries of a :meth:`to_dict` (as parsed from
        JSON) no entries of this kind, in a phrase; None when they are."""
        key, ident = ("token", "id") if cls.tokens else ("label", "index")
        for name, entry in (("target", target), ("foil", foil)):
            if name == "foil" and entry is None:
                continue
            if not isinstance(entry, dict) or type(entry.get(ident)) is not int or not isinstance(entry.get(key), str):
                return f"'{name}' is not {{{key!r}: text, {ident!r}: integer}}"
        return None

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Target:
        """The target a :meth:`to_dict` wrote (any registered kind)."""
        return kind_named(data.get("kind"))._from_dict(data)

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Target:
        target, foil = data["target"], data.get("foil")

        def split(entry):
            return int(entry.get("index", entry.get("id"))), entry.get("label", entry.get("token"))

        index, label = split(target)
        foil_index, foil_label = split(foil) if foil else (None, None)
        return cls(index, foil_index, data.get("position"), label or "", foil_label)

    # ------------------------------------------------------------ resolving a request
    @classmethod
    def ids_of(
        cls, request: Request, predicted: int | None, labels: Sequence[str], tokenizer, vocab_size: int
    ) -> tuple[int | None, int | None, list[str]]:
        """``(target, foil, notes)``: the vocabulary ids a request names, checked.

        ``predicted`` (the id predicted at the row read) stands for a target that is not
        given; ``notes`` say when a text of several pieces gives its first.
        """
        notes: list[str] = []

        def resolve(spec, role):
            value, note = cls._token(tokenizer, spec, vocab_size, role)
            if note:
                notes.append(note)
            return value

        index = predicted if request.target is None else resolve(request.target, "target")
        foil = None if request.foil is None else resolve(request.foil, "foil")
        if foil is not None and foil == index:
            raise InputError("the target and the foil are the same token; choose another foil")
        return index, foil, notes

    @classmethod
    def _token(cls, tokenizer, spec, vocab_size: int, role: str) -> tuple[int, str | None]:
        return token_id(tokenizer, spec, vocab_size, role)

    @classmethod
    def predict(cls, row_logits, labels: Sequence[str], tokenizer, target: Target | None = None) -> Prediction:
        """The prediction at the row read, from its logits (C or V,): a language model's top tokens.

        ``target``: what is explained there, where the prediction depends on it."""
        import torch

        probabilities = torch.softmax(row_logits.double(), -1)
        top = torch.topk(probabilities, min(TOP_TOKENS, probabilities.shape[-1]))
        ids = [int(i) for i in top.indices]
        return Prediction(
            label=token_text(tokenizer, ids[0]),
            index=ids[0],
            probabilities=top.values.cpu().numpy(),
            labels=[token_text(tokenizer, i) for i in ids],
            ids=ids,
        )

    @classmethod
    def resolve(
        cls,
        request: Request,
        row_logits,
        position: int | None,
        labels: Sequence[str],
        tokenizer,
        vocab_size: int,
    ) -> tuple[Target, Prediction, list[str]]:
        """``(target, prediction, notes)`` of one input from the logits of the row read;
        an unnamed target is the prediction."""
        prediction = cls.predict(row_logits, labels, tokenizer)
        index, foil, notes = cls.ids_of(request, prediction.index, labels, tokenizer, vocab_size)
        assert index is not None
        target = cls(
            index,
            foil,
            position,
            cls._label(index, labels, tokenizer),
            None if foil is None else cls._label(foil, labels, tokenizer),
        )
        return target, prediction, notes

    @classmethod
    def _label(cls, index: int, labels: Sequence[str], tokenizer) -> str:
        return token_text(tokenizer, index)

    @classmethod
    def prediction_for(
        cls,
        request: Request | None,
        row_logits,
        position: int | None,
        labels: Sequence[str],
        tokenizer,
        vocab_size: int,
    ) -> Prediction:
        """What the model predicts at the row read of an input explained for ``request``
        (:class:`InputError` where the request cannot be resolved there)."""
        return cls.predict(row_logits, labels, tokenizer)


_KINDS: dict[str, type[Target]] = {}


def register(cls: type[Target]) -> type[Target]:
    """Make ``cls`` a kind of target, read back from files by its ``kind``.  Use as a class
    decorator.  The first kind registered for a head's ``task`` is what that head explains
    by default (:func:`for_task`)."""
    _KINDS[cls.kind] = cls
    return cls


def kind_named(kind: str | None) -> type[Target]:
    """The target type recorded as ``kind`` (records written before kinds were recorded: a class)."""
    if kind is None:
        return ClassTarget
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        raise InputError(f"unknown kind of target {kind!r}; known: {', '.join(_KINDS)}") from None


def for_task(task: str) -> type[Target]:
    """The target type a head's predictions are explained as by default (``Head.task``)."""
    for cls in _KINDS.values():
        if cls.task == task:
            return cls
    raise UnsupportedModelError(
        "this model has no head to explain (a bare encoder); load a sequence classifier, a causal LM or a masked LM"
    )


@register
@dataclass(frozen=True)
class ClassTarget(Target):
    """A class of a sequence classifier, read where its head reads."""

    kind: ClassVar[str] = "class"
    task: ClassVar[str] = "classifier"
    title: ClassVar[str] = "class probability"
    heading: ClassVar[str] = "Prediction"
    row_note: ClassVar[str] = "row ▶ = classifier token"
    choices_heading: ClassVar[str] = "Classes"
    tokens: ClassVar[bool] = False
    per_sample: ClassVar[bool] = False

    def protocol_description(self) -> str:
        what = "class predicted on the full input"
        return f"logit difference of the {what} and the foil" if self.foil is not None else f"probability of the {what}"

    def spec(self) -> tuple[str | None, str | None]:
        return self.label, self.foil_label

    @classmethod
    def ids_of(
        cls, request: Request, predicted: int | None, labels: Sequence[str], tokenizer, vocab_size: int
    ) -> tuple[int | None, int | None, list[str]]:
        index = predicted if request.target is None else class_index(request.target, labels, "target")
        foil = None if request.foil is None else class_index(request.foil, labels, "foil")
        if foil is not None and foil == index:
            raise InputError("the target and the foil are the same class; choose another foil")
        return index, foil, []

    @classmethod
    def predict(cls, row_logits, labels: Sequence[str], tokenizer, target: Target | None = None) -> Prediction:
        import torch

        probabilities = torch.softmax(row_logits.double(), -1).cpu().numpy()
        index = int(probabilities.argmax())
        return Prediction(label=labels[index], index=index, probabilities=probabilities, labels=list(labels))

    @classmethod
    def _label(cls, index: int, labels: Sequence[str], tokenizer) -> str:
        return labels[index]


@register
@dataclass(frozen=True)
class NextTokenTarget(Target):
    """The next token of a causal LM, read at the last token."""

    kind: ClassVar[str] = "next_token"
    task: ClassVar[str] = "causal_lm"
    title: ClassVar[str] = "next token"
    heading: ClassVar[str] = "Next token"
    row_note: ClassVar[str] = "row ▶ = last token (predicts the next)"
    choices_heading: ClassVar[str] = "Next tokens"
    keeps_end: ClassVar[bool] = True

    def row_in(self, ids: Sequence[int], mask_id: int | None) -> int | None:
        return len(ids) - 1

    def keeps(self, keep: np.ndarray) -> np.ndarray:
        if len(keep):
            keep[-1] = True  # the row the next token is predicted from
        return keep


@register
@dataclass(frozen=True)
class MaskedTokenTarget(Target):
    """A masked LM at its one mask: a target form against a foil form."""

    kind: ClassVar[str] = "masked_token"
    task: ClassVar[str] = "masked_lm"
    title: ClassVar[str] = "masked token"
    heading: ClassVar[str] = "At the mask"
    row_note: ClassVar[str] = "row ▶ = the mask"
    choices_heading: ClassVar[str] = "Tokens at the mask"
    mask_deletion: ClassVar[bool] = False

    @property
    def quantity(self) -> str:
        return "p(target) against the foil"

    def value(self, row_logits):
        import torch

        pair = row_logits[:, [self.index, self.foil]]
        return torch.softmax(pair, dim=-1)[:, 0]

    def row_in(self, ids: Sequence[int], mask_id: int | None) -> int | None:
        """The one mask, or (same length, several masks) the original position."""
        masks = [j for j, t in enumerate(ids) if t == mask_id]
        return masks[0] if len(masks) == 1 else self.position

    def curve_label(self) -> tuple[str, str]:
        return PROBABILITY, f"p({self.name} vs {self.foil_name})"

    def protocol_description(self) -> str:
        return "p(target form) against the foil form at the mask"

    @classmethod
    def complete(cls, request: Request | None) -> bool:
        """Whether ``request`` names both forms (a masked token is explained only so)."""
        return request is not None and request.target is not None and request.foil is not None

    @classmethod
    def ids_of(
        cls, request: Request, predicted: int | None, labels: Sequence[str], tokenizer, vocab_size: int
    ) -> tuple[int | None, int | None, list[str]]:
        if not cls.complete(request):
            raise InputError("a masked LM is explained as a target against a foil (e.g. two verb forms): give both")
        return super().ids_of(request, predicted, labels, tokenizer, vocab_size)

    @classmethod
    def _token(cls, tokenizer, spec, vocab_size: int, role: str) -> tuple[int, str | None]:
        value, note = token_id(tokenizer, spec, vocab_size, role)
        if note:
            raise InputError(f"the {role} {spec!r} is several tokens for this model; a masked token is one")
        return value, None

    @classmethod
    def predict(cls, row_logits, labels: Sequence[str], tokenizer, target: Target | None = None) -> Prediction:
        """The likelier of the two forms of ``target``; the top tokens without one."""
        if target is None or target.foil is None:
            return super().predict(row_logits, labels, tokenizer)
        import torch

        ids = [int(target.index), int(target.foil)]
        pair = torch.softmax(row_logits.double()[ids], -1).cpu().numpy()
        index = int(pair.argmax())
        names = [target.label, target.foil_label or ""]
        return Prediction(label=names[index], index=ids[index], probabilities=pair, labels=names, ids=ids)

    @classmethod
    def resolve(
        cls,
        request: Request,
        row_logits,
        position: int | None,
        labels: Sequence[str],
        tokenizer,
        vocab_size: int,
    ) -> tuple[Target, Prediction, list[str]]:
        """Both forms come from the request (never from the prediction)."""
        index, foil, notes = cls.ids_of(request, None, labels, tokenizer, vocab_size)
        assert index is not None and foil is not None
        target = cls(index, foil, position, token_text(tokenizer, index), token_text(tokenizer, foil))
        return target, cls.predict(row_logits, labels, tokenizer, target), notes

    @classmethod
    def prediction_for(
        cls,
        request: Request | None,
        row_logits,
        position: int | None,
        labels: Sequence[str],
        tokenizer,
        vocab_size: int,
    ) -> Prediction:
        if not cls.complete(request):
            return cls.predict(row_logits, labels, tokenizer)
        assert request is not None
        return cls.resolve(request, row_logits, position, labels, tokenizer, vocab_size)[1]


@register
@dataclass(frozen=True)
class AnswerTarget(Target):
    """A whole answer after a prompt, teacher-forced (GUIDE §1.8): answer token i, at input
    position ``start + i``, is predicted at the row before it (``start + i - 1``) from the
    prompt and the answer tokens before it.  The quantity is the answer's log-probability (the
    sum over its tokens), or with a foil per step the sum of the logit differences.

    ``index`` is the first answer token, ``position`` the first step's row and ``label`` the
    answer's text; ``ids`` are all the answer's tokens and ``pieces`` their texts.
    """

    kind: ClassVar[str] = "answer"
    task: ClassVar[str] = "causal_lm"
    title: ClassVar[str] = "answer"
    heading: ClassVar[str] = "Answer"
    row_note: ClassVar[str] = "row ▶ = a step's row (predicts the answer token after it)"
    choices_heading: ClassVar[str] = "Next tokens"
    keeps_end: ClassVar[bool] = True

    ids: tuple[int, ...] = ()
    start: int = 0
    pieces: tuple[str, ...] = ()
    foils: tuple[int, ...] | None = None

    @classmethod
    def of(
        cls, ids: Sequence[int], start: int, text: str, pieces: Sequence[str], foils: Sequence[int] | None = None
    ) -> AnswerTarget:
        if not ids:
            raise InputError("the answer is empty: give some words (or generate at least one token)")
        if start < 1:
            raise InputError("an answer needs a prompt before it (at least a start-of-text token)")
        if foils is not None and len(foils) != len(ids):
            raise InputError(f"{len(foils)} foils for {len(ids)} answer tokens: give one per answer token")
        return cls(
            int(ids[0]),
            None,
            start - 1,
            text,
            None,
            tuple(int(i) for i in ids),
            int(start),
            tuple(pieces),
            None if foils is None else tuple(int(f) for f in foils),
        )

    @property
    def steps(self) -> int:
        return len(self.ids)

    @property
    def rows(self) -> list[int]:
        """The row each answer token is predicted at, in the explained input."""
        return [self.start + i - 1 for i in range(len(self.ids))]

    def step(self, i: int) -> NextTokenTarget:
        """Step ``i`` alone: answer token ``i`` as the next token after the prompt and the
        answer before it (read at the row before it; against its foil, if any)."""
        if not 0 <= i < len(self.ids):
            raise IndexError(f"step {i} of an answer of {len(self.ids)} tokens")
        foil = None if self.foils is None else self.foils[i]
        label = None if foil is None else f"id:{foil}"
        return NextTokenTarget(self.ids[i], foil, self.start + i - 1, self.pieces[i], label)

    @property
    def quantity(self) -> str:
        return "log p(answer)" if self.foils is None else "sum of logit differences"

    @property
    def contrastive(self) -> bool:
        return self.foils is not None

    def value(self, row_logits):
        raise TypeError("an answer is read at one row per answer token: use value_of_rows")

    def value_of_rows(self, rows_logits):
        """Sum over the steps of ``log p(answer token)`` (or of the logit differences against the
        foils) from the logits of the steps' rows (B, k, V)."""
        import torch

        ids = torch.as_tensor(self.ids, device=rows_logits.device)
        picked = rows_logits.gather(-1, ids.expand(rows_logits.shape[0], -1)[..., None])[..., 0]
        if self.foils is None:
            return (picked - torch.logsumexp(rows_logits, -1)).sum(-1)
        foils = torch.as_tensor(self.foils, device=rows_logits.device)
        other = rows_logits.gather(-1, foils.expand(rows_logits.shape[0], -1)[..., None])[..., 0]
        return (picked - other).sum(-1)

    def rows_in(self, ids: Sequence[int], mask_id: int | None) -> list[int | None]:
        """The answer closes the input (its tokens are never deleted): its steps' rows count
        back from the end."""
        first = len(ids) - len(self.ids) - 1
        return [first + i for i in range(len(self.ids))]

    def row_in(self, ids: Sequence[int], mask_id: int | None) -> int | None:
        return self.rows_in(ids, mask_id)[0]

    def keeps(self, keep: np.ndarray) -> np.ndarray:
        keep[len(keep) - len(self.ids) :] = True  # deletion removes prompt tokens, never the answer
        return keep

    def scored(self, n: int) -> int:
        return n - 1  # the last answer token comes before nothing that is explained

    def answer(self, tokens: Sequence[str]) -> dict[str, Any] | None:
        return {"text": self.label, "ids": list(self.ids), "tokens": list(tokens), "start": self.start}

    def describe(self) -> str:
        return f"explaining the answer {self.label!r} ({len(self.ids)} tokens)"

    def curve_label(self) -> tuple[str, str]:
        return LOG_PROBABILITY, "log p(answer)" if self.foils is None else "Σ logit differences"

    def protocol_description(self) -> str:
        if self.foils is None:
            return "log-probability of the answer (the sum over its tokens)"
        return "sum over the answer's tokens of the logit difference against each step's foil"

    def spec(self) -> tuple[str | None, str | None]:
        return None, None

    def is_default(self, prediction: Prediction) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": {"text": self.label, "ids": list(self.ids), "tokens": list(self.pieces), "start": self.start},
            "foil": None if self.foils is None else {"ids": list(self.foils)},
            "position": self.position,
            "quantity": self.quantity,
        }

    @classmethod
    def entry_problem(cls, target: Any, foil: Any) -> str | None:
        def ints(values: Any) -> bool:
            return type(values) is list and bool(values) and all(type(v) is int for v in values)

        if not (
            isinstance(target, dict)
            and isinstance(target.get("text"), str)
            and ints(target.get("ids"))
            and type(target.get("start")) is int
            and target["start"] >= 1
            and type(target.get("tokens")) is list
            and all(isinstance(t, str) for t in target["tokens"])
        ):
            return "'target' is not an answer's {'text', 'ids', 'tokens', 'start'}"
        if foil is not None and not (
            isinstance(foil, dict) and ints(foil.get("ids")) and len(foil["ids"]) == len(target["ids"])
        ):
            return "'foil' is not {'ids': one token per answer token}"
        return None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Target:
        target, foil = data["target"], data.get("foil")
        return cls.of(
            target["ids"], target["start"], target.get("text", ""), target.get("tokens", ()), (foil or {}).get("ids")
        )


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
        first = token_text(tokenizer, pieces[0])
        note = f"the {role} {spec!r} is {len(pieces)} tokens ({shown}); using the first, {first!r}"
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


def as_target(target: Target | int) -> Target:
    """A target; a plain int is a class index (read where the classifier's head reads)."""
    if isinstance(target, Target):
        return target
    return ClassTarget(int(target), position=0)
