"""The public entry point: ``Explainer`` wraps a model, its tokenizer and adapter."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from alti import targets as T
from alti.adapters import get_adapter
from alti.adapters.base import linear_weight
from alti.capture import BatchLayer, LayerView, PreLNView, capture
from alti.catalog import EXPLAIN_METHODS
from alti.core import contributions, workspace
from alti.core.rollout import rolled_row
from alti.devices import resolve_device
from alti.errors import InputError, UnsupportedModelError, check_utf8
from alti.methods import METHODS, Method, get_method
from alti.methods import logit as logit_methods
from alti.methods.base import MethodOutput, Source
from alti.results import Explanation, Prediction

UNBOUNDED_LENGTH = 1_000_000
#: The most tokens a causal LM is explained at unless ``max_tokens`` says otherwise (the model's
#: own window is usually far longer): a whole answer with ALTI and ALTI-Logit on SmolLM2-135M
#: takes about 21 s at 2,048 tokens on a 2-core CPU, 77 s and 1.2 GB over the model at 4,096.
LM_MAX_TOKENS = 2048
#: The most bytes of per-layer matrices an explanation keeps (``Explainer.layer_budget``): past
#: it (SmolLM2's 30 layers at 2,100 tokens, one method) each method keeps only its running
#: rolled-out product, so memory grows with one n x n matrix instead of L of them.
LAYER_BUDGET = 512 * 2**20
EMPTY_TEXT = "the text is empty; give some words to explain"

__all__ = ["Explainer", "resolve_device"]


def _use_eager_attention(model: torch.nn.Module) -> None:
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.set_attn_implementation("eager")


#: the most memory (bytes) one group of a batch's head vectors and attention may take on the GPU path
#: (:meth:`Explainer._groups`)
BATCH_BYTES = 2 * 2**30


class Explainer:
    """Explains the predictions of a classifier, a causal LM or a masked LM.

    >>> ex = Explainer.from_pretrained("demo")
    >>> e = ex.explain("A warm, funny film.", methods=["alti", "rollout"])
    >>> e.scores["alti"], e.layers["alti"].shape

    What is explained depends on the head (:mod:`alti.targets`): a class of a
    classifier, the next token of a causal LM (``target=" Paris"``,
    ``foil=" London"``), or a masked token against a foil.
    """

    def __init__(
        self, model, tokenizer, name: str | None = None, device=None, adapter=None, max_tokens: int | None = None
    ):
        self.adapter = get_adapter(model) if adapter is None else adapter
        self.head = self.adapter.head
        #: what this model's predictions are explained as (:mod:`alti.targets`); None without a head
        self.target_type: type[T.Target] | None = T.for_task(self.head.task) if self.head.task != "encoder" else None
        self.device = next(model.parameters()).device if device is None else resolve_device(device)
        self.model = model.to(self.device).eval()
        _use_eager_attention(self.model)
        self.tokenizer = tokenizer
        config = model.config
        self.name = name or getattr(config, "_name_or_path", "") or config.model_type
        tokenizer_max = getattr(tokenizer, "model_max_length", None) or UNBOUNDED_LENGTH
        #: the longest input the model itself takes
        self.model_max_length = int(min(self.adapter.max_positions, tokenizer_max))
        if max_tokens is not None and max_tokens < 2:
            raise InputError(f"max_tokens must be at least 2, not {max_tokens}")
        if max_tokens is None and self.head.task == "causal_lm":
            max_tokens = LM_MAX_TOKENS
        #: the longest input explained: longer texts are truncated (:meth:`measure` says by how much)
        self.max_length = self.model_max_length if max_tokens is None else min(self.model_max_length, max_tokens)
        #: called with ``(layers done, layers)`` as the forward pass of an explanation goes on
        self.on_progress: Callable[[int, int], None] | None = None
        self.is_classifier = self.head.task == "classifier"
        self.labels = (
            [str(config.id2label.get(i, f"LABEL_{i}")) for i in range(config.num_labels)] if self.is_classifier else []
        )
        self.dtype = torch.promote_types(next(model.parameters()).dtype, torch.float32)
        specials = (
            tokenizer.cls_token_id,
            tokenizer.sep_token_id,
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
            tokenizer.mask_token_id,
        )
        self.special_ids = frozenset(i for i in specials if i is not None)
        self.pad_id = self._pad_token_id(config, tokenizer)
        # a decoder's tokenizer may pad on the left; encoders' heads read position 0, so never there
        self.left_padding = self.adapter.causal and getattr(tokenizer, "padding_side", "right") == "left"
        self._folded: dict = {}
        #: called by long methods between their steps (an explorer yields the CPU there, or stops stale work)
        self.on_pause = None
        #: the most bytes of per-layer matrices kept for one input (all trace methods together);
        #: longer inputs are rolled out as the layers come and have no ``Explanation.layers``
        #: (None: always keep them)
        self.layer_budget: int | None = LAYER_BUDGET
        # transformers' causal LMs can compute their output at chosen rows only
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def _pad_token_id(self, config, tokenizer) -> int:
        """The id padded batches use; a decoder classifier must read past exactly that id."""
        configured = getattr(config, "pad_token_id", None)
        if self.is_classifier and self.head.reads == "last":
            if configured is None:
                fallback = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
                configured = 0 if fallback is None else fallback
                config.pad_token_id = configured  # transformers refuses padded batches without one
            return int(configured)
        for candidate in (tokenizer.pad_token_id, configured, tokenizer.eos_token_id):
            if candidate is not None:
                return int(candidate)
        return 0

    def pause_point(self) -> None:
        """Long methods (DecompX, Value Zeroing) call this between steps: ``on_pause`` may wait
        or raise to stop the work."""
        if self.on_pause is not None:
            self.on_pause()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        device: str = "auto",
        trust_remote_code: bool = False,
        progress=None,
        max_tokens: int | None = None,
    ) -> Explainer:
        """Load a model by name or path (``"demo"`` for the embedded classifier, ``"smollm2"``).

        ``progress(text)`` hears of slow steps (SmolLM2's one-off download and conversion);
        ``max_tokens`` caps the input explained (default: the model's maximum, and
        :data:`LM_MAX_TOKENS` for a causal LM).
        """
        from alti.loading import load_model

        device = resolve_device(device)
        model, tokenizer, display_name = load_model(name_or_path, device, trust_remote_code, progress)
        return cls(model, tokenizer, name=display_name, device=device, max_tokens=max_tokens)

    def __repr__(self) -> str:
        return f"Explainer({self.name!r}, {self.adapter.model_type}, {self.head.task}, device={self.device})"

    @property
    def vocab_size(self) -> int:
        readout = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        if readout is not None:
            return int(readout.weight.shape[0])
        return int(getattr(self.model.config, "vocab_size", 0) or len(self.tokenizer))

    # ------------------------------------------------------------------ inputs
    def _encode(self, text: str) -> tuple[list[int], int]:
        """The ids explained for ``text`` and how many tokens the whole text has."""
        if not isinstance(text, str) or not text.strip():
            raise InputError(EMPTY_TEXT)
        check_utf8(text, "the text")
        mask = getattr(self.tokenizer, "mask_token", None)
        if self.head.reads == "mask" and mask and mask != "[MASK]":
            text = text.replace("[MASK]", mask)  # datasets write [MASK]; RoBERTa-style models say <mask>
        ids = list(self.tokenizer(text, truncation=False, verbose=False)["input_ids"])
        # zero-width spaces or control characters alone leave no token but the special ones (or none)
        if all(i in self.special_ids and i != self.tokenizer.mask_token_id for i in ids):
            raise InputError(EMPTY_TEXT)
        if len(ids) <= self.max_length:
            return ids, len(ids)
        if self.head.task == "causal_lm":
            # keep the start-of-text tokens and the end of the prompt: the next token depends on it
            lead = 0
            while lead < len(ids) and ids[lead] in self.special_ids:
                lead += 1
            lead = min(lead, self.max_length - 1)
            return ids[:lead] + ids[len(ids) - (self.max_length - lead) :], len(ids)
        kept = self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]
        return list(kept), len(ids)

    def measure(self, text: str) -> tuple[int, int]:
        """``(tokens in text, tokens explained)``: the second is smaller when the text is
        truncated to :attr:`max_length` (from the left for a causal LM, whose prediction
        depends on the end).  Cheap next to an explanation: tell the user before the work."""
        ids, total = self._encode(text)
        return total, len(ids)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with special tokens, truncated to ``max_length``
        (from the left for a causal LM, whose prediction depends on the end)."""
        return self._encode(text)[0]

    def special_mask(self, input_ids: Sequence[int]) -> np.ndarray:
        return np.array([i in self.special_ids for i in input_ids], dtype=bool)

    def never_deleted(self, input_ids: Sequence[int], target: T.Target | None = None) -> np.ndarray:
        """Tokens deletion curves keep: the special tokens, and the row a causal LM predicts from."""
        keep = self.special_mask(input_ids)
        return keep if target is None else target.keeps(keep)

    def _pad(self, id_lists: Sequence[Sequence[int]]):
        """``(input_ids, attention_mask, position_ids or None, starts)`` of a padded batch.

        Right padding, or left padding where the tokenizer pads on the left
        (then explicit position ids keep every real token where it would be
        alone); ``starts[b]`` is where row b's tokens begin.
        """
        width = max(len(ids) for ids in id_lists)
        input_ids = torch.full((len(id_lists), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(id_lists), width), dtype=torch.long)
        starts = []
        for row, ids in enumerate(id_lists):
            start = width - len(ids) if self.left_padding else 0
            input_ids[row, start : start + len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
            mask[row, start : start + len(ids)] = 1
            starts.append(start)
        positions = None
        if self.left_padding and any(starts):
            positions = (mask.cumsum(-1) - 1).clamp_min(0).to(self.device)
        return input_ids.to(self.device), mask.to(self.device), positions, starts

    def _kept(self, starts: Sequence[int], rows: Sequence[Sequence[int | None]]) -> list[int] | None:
        """The positions whose logits a causal LM needs to compute (None: its whole output);
        ``rows[b]`` are the rows example b is read at.

        A causal LM's output is vocabulary-sized at every position (100 MB for
        SmolLM2 at 512 tokens, per input); only the rows read are kept.
        """
        if self.head.task != "causal_lm" or not self._keeps_logits:
            return None
        return sorted({start + row for start, read in zip(starts, rows) for row in read if row is not None})

    def _read(self, logits: torch.Tensor, starts, rows, kept) -> list[torch.Tensor]:
        """The logits of the rows each example is read at: (R_b, C or V) per example (a
        classifier's one row, wherever its head reads)."""
        if self.is_classifier:
            return list(logits[:, None])
        return [
            torch.stack([logits[b, kept.index(start + row) if kept is not None else start + row] for row in read])
            for b, (start, read) in enumerate(zip(starts, rows))
        ]

    def _forward(self, id_lists: Sequence[Sequence[int]], rows: Sequence[Sequence[int | None]]) -> torch.Tensor:
        """The logits of the rows read (B, R, C or V) of a padded batch whose examples are read
        at as many rows each (no hooks, no gradients)."""
        input_ids, mask, position_ids, starts = self._pad(id_lists)
        kwargs = {} if position_ids is None else {"position_ids": position_ids}
        kept = self._kept(starts, rows)
        if kept is not None:
            kwargs["logits_to_keep"] = torch.tensor(kept, device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask, **kwargs).logits
        return torch.stack(self._read(logits, starts, rows, kept))

    def _require_classifier(self) -> None:
        if not self.is_classifier:
            raise UnsupportedModelError(
                f"{type(self.model).__name__} is not a sequence classifier; "
                "load a fine-tuned sequence-classification checkpoint"
            )

    def _require_head(self) -> type[T.Target]:
        """The target type of this model's head; a one-line error for a bare encoder."""
        if self.target_type is None:
            raise UnsupportedModelError(
                f"{type(self.model).__name__} has no head to explain; load a sequence classifier, "
                "a causal LM or a masked LM"
            )
        return self.target_type

    def predict_ids(self, id_lists: Sequence[Sequence[int]], batch_size: int = 32) -> np.ndarray:
        """Class probabilities (B, C) of token-id sequences, run as padded batches."""
        self._require_classifier()
        out = []
        for start in range(0, len(id_lists), batch_size):
            chunk = id_lists[start : start + batch_size]
            logits = self._forward(chunk, [[0]] * len(chunk))[:, 0]
            out.append(torch.softmax(logits.double(), -1).cpu().numpy())
        if not out:
            return np.zeros((0, len(self.labels)))
        return np.concatenate(out)

    def predictions(
        self,
        texts: Sequence[str],
        requests: Sequence[T.Request | None] | None = None,
        batch_size: int = 16,
        skip_errors: bool = False,
    ) -> list[Prediction | None]:
        """What the model predicts at the row each text is read at, as padded batches.

        A classifier's classes, an LM's top tokens; a masked LM with a request's
        target and foil gives their two probabilities.  ``skip_errors``: a text that
        cannot be read (no mask, empty) gives None instead of raising, and forms that
        are no single token give the masked LM's top tokens.
        """
        kind = self._require_head()
        encoded, positions = [], []
        for text in texts:
            try:
                ids = self.encode(text)
                position = self._position(ids)
            except InputError:
                if not skip_errors:
                    raise
                ids = position = None
            encoded.append(ids)
            positions.append(position)
        readable = [i for i, ids in enumerate(encoded) if ids is not None]
        out: list[Prediction | None] = [None] * len(texts)
        for begin in range(0, len(readable), batch_size):
            chunk = readable[begin : begin + batch_size]
            rows = self._forward([encoded[i] for i in chunk], [[positions[i]] for i in chunk])[:, 0]
            for i, row in zip(chunk, rows):
                request = requests[i] if requests else None
                try:
                    out[i] = kind.prediction_for(
                        request, row, positions[i], self.labels, self.tokenizer, self.vocab_size
                    )
                except InputError:
                    if not skip_errors:
                        raise
                    out[i] = kind.predict(row, self.labels, self.tokenizer)
        return out

    def _position(self, ids: Sequence[int]) -> int | None:
        """The row the head reads in ``ids`` (None: the mean of the rows)."""
        return T.position(self.head.reads, ids, self.pad_id, self.tokenizer.mask_token_id)

    def quantities(self, id_lists: Sequence[Sequence[int]], target: T.Target | int, batch_size: int = 32) -> np.ndarray:
        """The explained quantity (B,) of ``target`` on each id sequence (deletion curves).

        ``target``: a resolved target, or a class index.
        """
        target = T.as_target(target)
        out = []
        for begin in range(0, len(id_lists), batch_size):
            chunk = id_lists[begin : begin + batch_size]
            rows = self._forward(chunk, [target.rows_in(ids, self.tokenizer.mask_token_id) for ids in chunk])
            out.append(target.value_of_rows(rows.double()).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def quantity_forward(self, target: T.Target | int):
        """A differentiable forward for Captum: input ids (B, n) of one length -> quantity (B,)."""
        target = T.as_target(target)

        keep = self.head.task == "causal_lm" and self._keeps_logits

        def forward(input_ids: torch.Tensor) -> torch.Tensor:
            if self.is_classifier:
                return target.value_of_rows(self.model(input_ids=input_ids).logits[:, None])
            rows = target.rows_in(input_ids[0].tolist(), self.tokenizer.mask_token_id)
            if keep:  # a gradient method's batch of interpolated inputs need not hold B x n x V logits
                kept = torch.tensor(rows, device=input_ids.device)
                return target.value_of_rows(self.model(input_ids=input_ids, logits_to_keep=kept).logits)
            return target.value_of_rows(self.model(input_ids=input_ids).logits[:, rows])

        return forward

    def _methods(self, methods: Sequence[str] | str | None) -> list[Method]:
        if methods is None:
            methods = EXPLAIN_METHODS
        if isinstance(methods, str):
            methods = [m for m in methods.split(",") if m]
        chosen = [get_method(name) for name in methods]
        for method in chosen:
            reason = method.refusal(self)
            if reason:
                usable = ", ".join(self.applicable_methods())
                raise UnsupportedModelError(
                    f"{method.name} does not apply to this model ({reason}); methods that do: {usable}"
                )
        return chosen

    def applicable_methods(self) -> list[str]:
        """The registered methods that apply to this model."""
        return [name for name, method in METHODS.items() if not method.refusal(self)]

    # -------------------------------------------------------------- explaining
    def explain(
        self,
        text: str,
        methods: Sequence[str] | None = None,
        target: int | str | None = None,
        options: dict[str, dict[str, Any]] | None = None,
        foil: int | str | None = None,
        *,
        answer: str | None = None,
        generate: int | None = None,
        chat: bool = False,
        system: str | None = None,
        segments: str | Sequence[tuple[int, int]] | None = None,
        per_step: bool = False,
    ) -> Explanation:
        """Explain one text.

        ``target`` / ``foil``: a class (index or label) of a classifier, or a token
        of an LM (``" Paris"``, ``"id:1234"``, an id); by default the predicted
        class or token and no foil.

        A causal LM's whole answer to ``text`` (the prompt): ``answer`` teacher-forces a
        given answer, ``generate=N`` generates up to N tokens greedily; ``chat`` formats the
        prompt (and ``system``) with the tokenizer's chat template; ``segments`` (sentences,
        lines, turns or character spans) scores spans of the prompt (:mod:`alti.answers`);
        ``per_step``: the gradient methods and occlusion explain each step too (one backward
        pass, or occlusion's passes, per answer token; the other methods' steps come free).
        """
        if answer is not None or generate is not None:
            from alti import answers

            return answers.explain(
                self, text, methods, answer, generate, chat, system, segments, options, foil, per_step
            )
        if chat or system is not None or segments is not None or per_step:
            raise InputError("chat templates, segments and per_step go with an answer: give answer= or generate=")
        return self.explain_batch([text], methods, batch_size=1, target=target, options=options, foil=foil)[0]

    def explain_batch(
        self,
        texts: Sequence[str],
        methods: Sequence[str] | None = None,
        batch_size: int = 8,
        target: int | str | None = None,
        options: dict[str, dict[str, Any]] | None = None,
        foil: int | str | None = None,
        targets: Sequence[T.Request] | None = None,
    ) -> list[Explanation]:
        """Explain many texts, forward passes run as padded batches.

        The results equal those of :meth:`explain` one by one.  ``targets``
        gives each text its own target and foil (else ``target``/``foil`` for all).
        """
        self._require_head()
        chosen = self._methods(methods)
        options = options or {}
        requests = list(targets) if targets is not None else [T.Request(target, foil)] * len(texts)
        encoded = [self._encode(text) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i][0]))
        results: list[Explanation | None] = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self._explain_ids([encoded[i][0] for i in rows], chosen, [requests[i] for i in rows], options)
            for row, explanation in zip(rows, batch):
                explanation.text = texts[row]
                explanation.truncated = encoded[row][1] > len(encoded[row][0])
                results[row] = explanation
        return results

    def explain_ids(
        self,
        input_ids: Sequence[int],
        methods: Sequence[str] | None = None,
        target: int | str | None = None,
        options: dict[str, dict[str, Any]] | None = None,
        foil: int | str | None = None,
    ) -> Explanation:
        """Explain a token-id sequence (with its special tokens) as given."""
        self._require_head()
        if not len(input_ids):
            raise InputError("the token sequence is empty")
        return self._explain_ids([list(input_ids)], self._methods(methods), [T.Request(target, foil)], options or {})[0]

    def _view(self, layer, modules, row: int, start: int, length: int, workspace=None, row_of_batch=None):
        if self.adapter.pre_ln:
            return PreLNView(
                layer,
                modules,
                row,
                start,
                length,
                self.dtype,
                self._folded,
                self.adapter.num_heads,
                workspace,
                row_of_batch,
            )
        return LayerView(layer, modules, row, length, self.dtype, self._folded, start, workspace, row_of_batch)

    def _groups(self, id_lists, starts) -> list[list[int]]:
        """Which rows of a padded batch are decomposed together: all of them, in groups whose
        head vectors and attention (in the maths dtype) fit in :data:`BATCH_BYTES`, where
        ALTI's L1 runs as one Triton launch per group (CUDA); else each row alone (the CPU
        kernel works row by row)."""
        rows = list(range(len(id_lists)))
        if len(rows) < 2 or contributions.triton_kernel(self.device) is None:
            return [[row] for row in rows]
        d = linear_weight(self.adapter.layers[0].output).shape[0]
        per_head = torch.finfo(self.dtype).bits // 8 * self.adapter.num_heads
        groups: list[list[int]] = [[]]
        for row in rows:
            group = groups[-1] + [row]
            span = max(starts[r] + len(id_lists[r]) for r in group) - min(starts[r] for r in group)
            if groups[-1] and len(group) * span * (d + span) * per_head > BATCH_BYTES:
                groups.append([row])
            else:
                groups[-1] = group
        return groups

    def keeps_layers(self, length: int, methods: int = 1) -> bool:
        """Whether an input of ``length`` tokens keeps the per-layer matrices of ``methods``
        trace methods (within :attr:`layer_budget`)."""
        size = self.adapter.num_layers * length * length * self.dtype.itemsize * methods
        return self.layer_budget is None or size <= self.layer_budget

    def _stream(self, id_lists, starts, methods, positions=None, steps=None, keep=False):
        """An ``on_layer`` callback for :func:`capture` and what it gathers, per example:
        the per-layer matrices of the trace methods (a :class:`_Layers`, or past
        :attr:`layer_budget` unless ``keep``, a :class:`_Rolling`) and, where ``positions``
        are given (ALTI-Logit), the rows :mod:`alti.methods.logit` reads at each example's
        position; ``steps`` (a :class:`~alti.methods.logit.StepRows` per example) gather a
        whole answer's readout rows instead.  Without the layers, ALTI-Logit's block terms
        are folded into ALTI's running product as each block comes."""
        chosen = [m for m in methods if m.source is Source.TRACE]
        matrices = [
            {
                m: _Layers(self.adapter.num_layers)
                if keep or self.keeps_layers(len(ids), len(chosen))
                else _Rolling(m.rolled, self.adapter.causal)
                for m in chosen
            }
            for ids in id_lists
        ]
        # ALTI's running product per example, where ALTI-Logit's block terms fold into it
        folding = [
            next((v for m, v in kept.items() if m.name == "alti" and isinstance(v, _Rolling)), None)
            for kept in matrices
        ]
        rows = [[] for _ in id_lists]
        scratch = workspace.local()  # this thread's buffers, kept between layers and calls
        groups = self._groups(id_lists, starts)

        def on_layer(index: int, layer) -> None:
            modules = self.adapter.layers[index]
            for group in groups:
                together, batched = None, {}
                if len(group) > 1:  # the group's rows at once: decomposed on first use by a method
                    spans = [(starts[row], starts[row] + len(id_lists[row])) for row in group]
                    together = BatchLayer(
                        layer, modules, group, spans, self.dtype, self.adapter.num_heads, self._folded
                    )
                    batched = {m: together.rows_of(m.compute(together)) for m in chosen if m.batched}
                for k, row in enumerate(group):
                    row_of_batch = None if together is None else (lambda k=k, t=together: t.decomposition.row(k))
                    # one layer at a time: its decomposition is freed (its buffers free to reuse) before the next
                    view = self._view(layer, modules, row, starts[row], len(id_lists[row]), scratch, row_of_batch)
                    for method in chosen:
                        matrices[row][method].append(batched[method][k] if method in batched else method.compute(view))
                    alti = folding[row]
                    if positions is not None and positions[row] is not None:
                        rows[row].append(logit_methods.LayerRow.of(view, positions[row]))
                        if alti is not None:
                            alti.fold(rows[row][-1].mixed.T)
                    if steps is not None and steps[row] is not None:
                        steps[row].add(view)
                        if alti is not None:
                            alti.fold(steps[row].contributions[-1])
            if self.on_progress is not None:
                self.on_progress(index + 1, self.adapter.num_layers)

        return on_layer, matrices, rows

    def layer_matrices(self, input_ids: Sequence[int], methods: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Per-layer matrices (L, n, n) of the trace methods for one id sequence.

        Works for any model with a supported adapter, also without a head.
        """
        chosen = self._methods(methods)
        unknown = [m.name for m in chosen if m.source is not Source.TRACE]
        if unknown:
            raise InputError(f"{', '.join(unknown)}: not a per-layer matrix method")
        ids_tensor, mask, positions, starts = self._pad([list(input_ids)])
        on_layer, matrices, _ = self._stream([list(input_ids)], starts, chosen, keep=True)
        with torch.inference_mode():
            capture(
                self.model,
                self.adapter,
                ids_tensor,
                mask,
                positions,
                on_layer,
                self._kept(starts, [[len(input_ids) - 1]]),
            )
        return {m.name: v.tensor.cpu().numpy() for m, v in matrices[0].items()}

    def explain_answer_ids(
        self,
        ids: Sequence[int],
        target: T.AnswerTarget,
        methods: Sequence[str] | None = None,
        options: dict[str, dict[str, Any]] | None = None,
        per_step: bool = False,
    ) -> Explanation:
        """Explain a whole answer: ``ids`` are the prompt's then the answer's tokens, as
        ``target`` (its ``start``, ``ids`` and foils) says (GUIDE §1.8).

        One forward pass over prompt and answer gives every step: each trace method's row of
        each step (``steps``), whose mean is the whole answer's score; ALTI-Logit and logit
        per step, summed for the whole answer (its ``logit_terms`` summed too, so they add
        up to the sum of the answer's logits). A model method explains the answer's
        log-probability (gradients: one backward pass), and with ``per_step`` each step as
        that next token too (a backward pass per step).  :mod:`alti.answers` builds the input
        (chat templates, generation, segments) and calls this.
        """
        return self.explain_answers_ids([ids], [target], methods, options, per_step)[0]

    def explain_answers_ids(
        self,
        id_lists: Sequence[Sequence[int]],
        targets: Sequence[T.AnswerTarget],
        methods: Sequence[str] | None = None,
        options: dict[str, dict[str, Any]] | None = None,
        per_step: bool = False,
    ) -> list[Explanation]:
        """:meth:`explain_answer_ids` of several answers, their forward pass run as one padded
        batch (equal to one by one)."""
        from alti import __version__

        if self.head.task != "causal_lm":
            raise InputError(
                f"an answer is explained with a causal LM; {self.name} is a {self.head.task.replace('_', ' ')}"
            )
        id_lists = [list(ids) for ids in id_lists]
        if any(ids[target.start :] != list(target.ids) for ids, target in zip(id_lists, targets)):
            raise InputError("the answer's tokens are not at the end of the input")
        chosen = self._methods(methods)
        options = options or {}
        check_options(chosen, options)
        by_source = {source: [m for m in chosen if m.source is source] for source in Source}
        logit_chosen = by_source[Source.LOGIT]
        trace_chosen = list(by_source[Source.TRACE])
        if logit_chosen and not any(m.name == "alti" for m in trace_chosen):
            trace_chosen.append(get_method("alti"))
        steps: list[logit_methods.StepRows | None] = [None] * len(targets)
        if logit_chosen:
            for b, target in enumerate(targets):
                foils = None if target.foils is None else list(target.foils)
                steps[b] = logit_methods.StepRows(target.rows, logit_methods.step_base(self, list(target.ids), foils))
        input_ids, mask, position_ids, starts = self._pad(id_lists)
        on_layer, matrices, _ = self._stream(id_lists, starts, trace_chosen, steps=steps)
        rows = [target.rows for target in targets]
        kept = self._kept(starts, rows)
        with torch.inference_mode():
            trace = capture(self.model, self.adapter, input_ids, mask, position_ids, on_layer, kept)
        read = self._read(trace.logits, starts, rows, kept)  # (k, V) per answer: each step's row
        explanations = []
        for b, (ids, target) in enumerate(zip(id_lists, targets)):
            found = _Found()
            for method in by_source[Source.TRACE]:
                found.trace(method, matrices[b][method], target.rows)
            logit_terms = None
            if logit_chosen:
                readout = logit_methods.step_readout(self, steps[b], target, read[b])
                alti_layers = next(v for m, v in matrices[b].items() if m.name == "alti")
                for method in logit_chosen:
                    found.summed(method, method.compute(readout, alti_layers), readout.settings)
                logit_terms = readout.terms(found.scores[logit_chosen[0].name])
            unpadded = input_ids[b : b + 1, starts[b] : starts[b] + len(ids)]
            for method in by_source[Source.MODEL]:
                opts = dict(options.get(method.name, {}))
                found.model(method, method.compute(self, unpadded, target, **opts), opts, target, target.rows)
                if per_step and method.name not in found.steps:
                    found.model_steps(method, self._model_steps(method, unpadded, target, opts))
            predictions = [T.NextTokenTarget.predict(row, [], self.tokenizer) for row in read[b]]
            explanations.append(
                Explanation(
                    text="",
                    tokens=self.tokenizer.convert_ids_to_tokens(ids),
                    input_ids=ids,
                    prediction=predictions[0],
                    scores=found.scores,
                    layers=found.layers,
                    target_position=target.rows[0],
                    special=self.never_deleted(ids, target),
                    model_name=self.name,
                    settings=found.settings,
                    version=__version__,
                    target=target,
                    logit_terms=logit_terms,
                    steps=found.steps,
                    step_predictions=predictions,
                )
            )
        return explanations

    def _model_steps(self, method: Method, input_ids: torch.Tensor, target: T.AnswerTarget, options) -> np.ndarray:
        """Each step of an answer explained by a model method as that next token alone, on the
        tokens before it: (k, n), zero past each step's tokens."""
        rows = np.zeros((target.steps, input_ids.shape[1]))
        for i in range(target.steps):
            seen = target.start + i
            values = method.compute(self, input_ids[:, :seen], target.step(i), **options)
            rows[i, :seen] = values.scores if isinstance(values, MethodOutput) else values
        return rows

    def _explain_ids(self, id_lists, methods, requests, options) -> list[Explanation]:
        from alti import __version__

        kind = self._require_head()
        check_options(methods, options)
        by_source = {source: [m for m in methods if m.source is source] for source in Source}
        logit_chosen = by_source[Source.LOGIT]
        input_ids, mask, position_ids, starts = self._pad(id_lists)
        positions = [self._position(ids) for ids in id_lists]
        trace_chosen = list(by_source[Source.TRACE])
        if logit_chosen and not any(m.name == "alti" for m in trace_chosen):
            trace_chosen.append(get_method("alti"))  # ALTI-Logit rolls out through ALTI's matrices
        on_layer, matrices, layer_rows = self._stream(
            id_lists, starts, trace_chosen, positions if logit_chosen else None
        )
        kept = self._kept(starts, [[p] for p in positions])
        with torch.inference_mode():
            trace = capture(self.model, self.adapter, input_ids, mask, position_ids, on_layer, kept)
        read = [rows[0] for rows in self._read(trace.logits, starts, [[p] for p in positions], kept)]
        explanations = []
        for row, ids in enumerate(id_lists):
            position = positions[row]
            target, prediction, notes = kind.resolve(
                requests[row], read[row], position, self.labels, self.tokenizer, self.vocab_size
            )
            found = _Found()
            for method in by_source[Source.TRACE]:
                found.trace(method, matrices[row][method], position)
            logit_terms = None
            if logit_chosen:
                readout = logit_methods.readout(self, layer_rows[row], target, read[row])
                alti_layers = next(v for m, v in matrices[row].items() if m.name == "alti")
                for method in logit_chosen:
                    found.add(method, method.compute(readout, alti_layers))
                    found.settings[method.name] = {"kind": Source.LOGIT.value, "target_position": position}
                    found.settings[method.name].update(readout.settings)
                logit_terms = readout.terms(found.scores[logit_chosen[0].name])
            unpadded = input_ids[row : row + 1, starts[row] : starts[row] + len(ids)]
            for method in by_source[Source.MODEL]:
                opts = dict(options.get(method.name, {}))
                found.model(method, method.compute(self, unpadded, target, **opts), opts, target)
            scores, layers, settings = found.scores, found.layers, found.settings
            explanations.append(
                Explanation(
                    text="",
                    tokens=self.tokenizer.convert_ids_to_tokens(list(ids)),
                    input_ids=list(ids),
                    prediction=prediction,
                    scores=scores,
                    layers=layers,
                    target_position=position,
                    special=self.never_deleted(ids, target),
                    model_name=self.name,
                    settings=settings,
                    version=__version__,
                    target=target,
                    logit_terms=logit_terms,
                    notes=notes,
                )
            )
        return explanations


class _Layers:
    """One method's per-layer matrices of one input, written into one (L, n, n) tensor as the
    layers come: a list of layers stacked at the end would hold them twice (2 GB each for
    SmolLM2's 30 layers at 4,096 tokens).  ALTI-Logit reads them from the last layer down
    (:meth:`alti.methods.logit.Readout.mixed`); ``folded`` is for :class:`_Rolling`'s kind."""

    folded = None

    def __init__(self, layers: int) -> None:
        self.layers = layers
        self.done = 0
        self.tensor: torch.Tensor | None = None

    @classmethod
    def of(cls, tensor: torch.Tensor) -> _Layers:
        kept = cls(len(tensor))
        kept.tensor, kept.done = tensor, len(tensor)
        return kept

    def append(self, matrix: torch.Tensor) -> None:
        if self.tensor is None:
            self.tensor = matrix.new_empty((self.layers, *matrix.shape))
        self.tensor[self.done] = matrix
        self.done += 1

    def kept(self) -> np.ndarray:
        return self._on_cpu().numpy()

    def _on_cpu(self) -> torch.Tensor:
        """One copy from a GPU; the rollout's small products then run here."""
        assert self.tensor is not None
        self.tensor = self.tensor.cpu()
        return self.tensor

    def rows(self, position: int | None | list[int], rolled: bool) -> np.ndarray:
        """Row(s) ``position`` (None: the mean of the rows) of the rolled-out product, or of the
        last layer."""
        matrices = self._on_cpu()
        return rolled_row(matrices if rolled else matrices[-1:], position).double().numpy()


class _Rolling:
    """One method's matrices of an input past :attr:`Explainer.layer_budget`: only the running
    product ``R^l = C^l R^(l-1)`` (or, for a last-layer method, the last matrix), so memory holds
    two n x n matrices instead of L.  The product of a causal model's lower-triangular matrices
    is formed in place, a block of rows at a time over the columns that can be non-zero (a third
    of a full product's work).  ``fold(x)`` adds ``x R^(l-1)`` while block ``l`` is being added: what
    ALTI-Logit's rows-from-the-top products compute from kept layers (GUIDE §1.6)."""

    BLOCK = 512

    def __init__(self, rolled: bool, lower: bool) -> None:
        self.rolled = rolled
        self.lower = lower
        self.product: torch.Tensor | None = None  # R^(l-1)
        self.pending: torch.Tensor | None = None  # C^l, multiplied in when the next layer comes
        self.folded: torch.Tensor | None = None  # sum of fold(x) x R^(l-1), in float64

    def append(self, matrix: torch.Tensor) -> None:
        if self.rolled:
            self._apply()
        self.pending = matrix

    def fold(self, rows: torch.Tensor) -> None:
        if self.product is None:
            term = rows.double()
        else:  # in the matrices' dtype: a float64 copy of R would be another 2 n^2 floats
            term = (rows.to(self.product.dtype) @ self.product).double()
        self.folded = term if self.folded is None else self.folded + term

    def _apply(self) -> None:
        if self.pending is None:
            return
        left, right, self.pending = self.pending, self.product, None
        if right is None or not self.lower:
            self.product = left if right is None else left @ right
            return
        # in place, from the last block of rows up: each reads only the rows above its end
        with torch.inference_mode():  # the last layer's comes after the forward pass
            for start in reversed(range(0, len(right), self.BLOCK)):
                stop = min(start + self.BLOCK, len(right))
                right[start:stop, :stop] = left[start:stop, :stop] @ right[:stop, :stop]

    def kept(self) -> None:
        return None

    def rows(self, position: int | None | list[int], rolled: bool) -> np.ndarray:
        if rolled:
            self._apply()
            matrix = self.product
        else:
            matrix = self.pending
        assert matrix is not None
        row = matrix.mean(0) if position is None else matrix[position]
        return row.double().cpu().numpy()


class _Found:
    """One explanation's scores, per-layer matrices and recorded settings, method by method."""

    def __init__(self) -> None:
        self.scores: dict[str, np.ndarray] = {}
        self.layers: dict[str, np.ndarray] = {}
        self.settings: dict[str, dict[str, Any]] = {}
        #: a whole answer's rows per method (k, n), one per step
        self.steps: dict[str, np.ndarray] = {}

    def add(self, method: Method, scores) -> None:
        self.scores[method.name] = scores

    def trace(self, method: Method, kept: _Layers | _Rolling, position: int | None | list[int]) -> None:
        """A trace method's per-layer matrices (L, n, n), where kept, and its scores, the row
        read (or for a whole answer each step's row, and their mean)."""
        layers = kept.kept()
        settings = self.settings[method.name] = {
            "kind": Source.TRACE.value,
            "target_position": position,
            "scores_from": "rolled-out product" if method.rolled else "last layer",
        }
        if layers is None:
            settings["layers"] = (
                "not kept for an input this long (Explainer.layer_budget); scores rolled out as they came"
            )
        else:
            self.layers[method.name] = layers
        if isinstance(position, list):
            self._steps(method, kept, position)
            return
        self.add(method, kept.rows(position, method.rolled))
        if position is None:
            settings["rows"] = "mean of every row (mean pooling)"

    def _steps(self, method: Method, kept: _Layers | _Rolling, rows: list[int]) -> None:
        """Each step's row of a matrix method's product (or last layer) and their mean."""
        steps = kept.rows(rows, method.rolled)
        self.steps[method.name] = steps
        self.add(method, steps.mean(0))
        self.settings[method.name]["whole_answer"] = "mean of the steps' rows"

    def summed(self, method: Method, steps: np.ndarray, settings: dict[str, Any]) -> None:
        """A logit method's steps (k, n) and their sum, the whole answer's."""
        self.steps[method.name] = steps
        self.add(method, steps.sum(0))
        self.settings[method.name] = {"kind": Source.LOGIT.value, **settings, "whole_answer": "sum of the steps"}

    def model_steps(self, method: Method, steps: np.ndarray) -> None:
        """A model method's answer steps (k, n), each the next token explained alone."""
        self.steps[method.name] = steps
        self.settings[method.name]["steps"] = "each answer token explained alone, one backward pass per step"

    def model(
        self, method: Method, values, options: dict[str, Any], target: T.Target, rows: list[int] | None = None
    ) -> None:
        """What a model method returned: scores, or a :class:`MethodOutput` (whose per-layer
        matrices give a whole answer's steps, when they mix tokens as ALTI's do)."""
        settings = self.settings[method.name] = {"kind": Source.MODEL.value, **options}
        if method.info.explains == "probability":  # gradients and occlusion: p, or a logit difference
            settings["quantity"] = target.quantity
        if isinstance(values, MethodOutput):
            if values.layers is not None:
                self.layers[method.name] = np.asarray(values.layers)
            settings.update(values.settings)
            if rows is not None and values.layers is not None and not method.info.cumulative:
                self._steps(method, _Layers.of(torch.as_tensor(np.asarray(values.layers))), rows)
                return
            values = values.scores
        self.add(method, np.asarray(values, dtype=np.float64))


def check_options(methods: Sequence[Method], options: dict[str, dict[str, Any]]) -> None:
    """Refuse options for methods not chosen, and options a method does not declare, in one line."""
    chosen = {m.name: m for m in methods}
    for name, given in options.items():
        if name not in chosen:
            raise InputError(f"options for {name}, which is not among the methods ({', '.join(chosen)})")
        declared = {o.name: o for o in chosen[name].options}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            takes = ", ".join(declared) or "no option"
            raise InputError(f"{name} has no option {', '.join(unknown)}; it takes {takes}")
        for key, value in given.items():
            if value is not None:
                declared[key].check(value)
