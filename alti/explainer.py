"""The public entry point: ``Explainer`` wraps a model, its tokenizer and adapter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alti.adapters import get_adapter
from alti.capture import LayerView, capture
from alti.errors import InputError, UnsupportedModelError
from alti.methods import Method, get_method
from alti.results import Explanation, Prediction

DEFAULT_METHODS = ("alti",)
UNBOUNDED_LENGTH = 1_000_000


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) picks CUDA when available, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was asked for but is not available; use --device cpu or auto")
    return device


def _use_eager_attention(model: torch.nn.Module) -> None:
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.set_attn_implementation("eager")


class Explainer:
    """Explains a sequence classifier's predictions.

    >>> ex = Explainer.from_pretrained("demo")
    >>> e = ex.explain("A warm, funny film.", methods=["alti", "rollout"])
    >>> e.scores["alti"], e.layers["alti"].shape
    """

    def __init__(self, model, tokenizer, name: str | None = None, device=None):
        self.adapter = get_adapter(model)
        self.device = (
            next(model.parameters()).device if device is None else resolve_device(device)
        )
        self.model = model.to(self.device).eval()
        _use_eager_attention(self.model)
        self.tokenizer = tokenizer
        config = model.config
        self.name = name or getattr(config, "_name_or_path", "") or config.model_type
        tokenizer_max = getattr(tokenizer, "model_max_length", None) or UNBOUNDED_LENGTH
        self.max_length = int(min(self.adapter.max_positions, tokenizer_max))
        self.is_classifier = type(model).__name__.endswith("ForSequenceClassification")
        self.labels = [
            str(config.id2label.get(i, f"LABEL_{i}")) for i in range(config.num_labels)
        ]
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
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._folded: dict = {}

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, device: str = "auto", trust_remote_code: bool = False
    ) -> Explainer:
        """Load a classifier by name or path (``"demo"`` for the embedded one)."""
        from alti.loading import load_classifier

        device = resolve_device(device)
        model, tokenizer, display_name = load_classifier(name_or_path, device, trust_remote_code)
        return cls(model, tokenizer, name=display_name, device=device)

    def __repr__(self) -> str:
        return f"Explainer({self.name!r}, {self.adapter.model_type}, device={self.device})"

    def _encode(self, text: str) -> tuple[list[int], bool]:
        if not isinstance(text, str) or not text.strip():
            raise InputError("the text is empty; give some words to explain")
        ids = self.tokenizer(text, truncation=False, verbose=False)["input_ids"]
        if len(ids) <= self.max_length:
            return list(ids), False
        ids = self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]
        return list(ids), True

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with special tokens, truncated to ``max_length``."""
        return self._encode(text)[0]

    def special_mask(self, input_ids: Sequence[int]) -> np.ndarray:
        return np.array([i in self.special_ids for i in input_ids], dtype=bool)

    def _pad(self, id_lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(ids) for ids in id_lists)
        input_ids = torch.full((len(id_lists), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(id_lists), width), dtype=torch.long)
        for row, ids in enumerate(id_lists):
            input_ids[row, : len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
            mask[row, : len(ids)] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def predict_ids(self, id_lists: Sequence[Sequence[int]], batch_size: int = 32) -> np.ndarray:
        """Class probabilities (B, C) of token-id sequences, run as right-padded batches."""
        self._require_classifier()
        out = []
        for start in range(0, len(id_lists), batch_size):
            input_ids, mask = self._pad(id_lists[start : start + batch_size])
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits
            out.append(torch.softmax(logits.double(), -1).cpu().numpy())
        if not out:
            return np.zeros((0, len(self.labels)))
        return np.concatenate(out)

    def _require_classifier(self) -> None:
        if not self.is_classifier:
            raise UnsupportedModelError(
                f"{type(self.model).__name__} is not a sequence classifier; "
                "load a fine-tuned sequence-classification checkpoint"
            )

    def _methods(self, methods: Sequence[str] | str | None) -> list[Method]:
        if methods is None:
            methods = DEFAULT_METHODS
        if isinstance(methods, str):
            methods = [m for m in methods.split(",") if m]
        return [get_method(name) for name in methods]

    def explain(
        self,
        text: str,
        methods: Sequence[str] | None = None,
        target: int | None = None,
        options: dict[str, dict[str, Any]] | None = None,
    ) -> Explanation:
        """Explain one text; ``target`` (class index) defaults to the predicted class."""
        return self.explain_batch([text], methods, batch_size=1, target=target, options=options)[0]

    def explain_batch(
        self,
        texts: Sequence[str],
        methods: Sequence[str] | None = None,
        batch_size: int = 8,
        target: int | None = None,
        options: dict[str, dict[str, Any]] | None = None,
    ) -> list[Explanation]:
        """Explain many texts, forward passes run as right-padded batches.

        The results equal those of :meth:`explain` one by one.
        """
        self._require_classifier()
        chosen = self._methods(methods)
        options = options or {}
        encoded = [self._encode(text) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i][0]))
        results: list[Explanation | None] = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self._explain_ids(
                [encoded[i][0] for i in rows], chosen, target=target, options=options
            )
            for row, explanation in zip(rows, batch):
                explanation.text = texts[row]
                explanation.truncated = encoded[row][1]
                results[row] = explanation
        return results

    def _trace_matrices(self, trace, row: int, length: int, methods) -> dict[Method, torch.Tensor]:
        """Per-layer matrices (L, n, n) of the trace methods for one example of a batch."""
        chosen = [m for m in methods if m.kind == "trace"]
        if not chosen:
            return {}
        matrices: dict[Method, list[torch.Tensor]] = {m: [] for m in chosen}
        with torch.inference_mode():
            for layer, modules in zip(trace.layers, self.adapter.layers):
                # one layer at a time: its decomposition is freed before the next
                view = LayerView(layer, modules, row, length, self.dtype, self._folded)
                for method in chosen:
                    matrices[method].append(method.compute(view))
            return {m: torch.stack(layers) for m, layers in matrices.items()}

    def layer_matrices(
        self, input_ids: Sequence[int], methods: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Per-layer matrices (L, n, n) of the trace methods for one id sequence.

        Works for any model with a supported encoder, masked LMs included (for
        rows other than ``[CLS]``, e.g. a ``[MASK]`` position: use
        ``alti.core.rollout`` on the result or read rows of the product).
        """
        chosen = self._methods(methods)
        unknown = [m.name for m in chosen if m.kind != "trace"]
        if unknown:
            raise InputError(f"{', '.join(unknown)}: not a per-layer matrix method")
        ids_tensor, mask = self._pad([list(input_ids)])
        trace = capture(self.model, self.adapter, ids_tensor, mask)
        matrices = self._trace_matrices(trace, 0, len(input_ids), chosen)
        return {m.name: v.cpu().numpy() for m, v in matrices.items()}

    def explain_ids(
        self,
        input_ids: Sequence[int],
        methods: Sequence[str] | None = None,
        target: int | None = None,
        options: dict[str, dict[str, Any]] | None = None,
    ) -> Explanation:
        """Explain a token-id sequence (with its special tokens) as given."""
        self._require_classifier()
        if not len(input_ids):
            raise InputError("the token sequence is empty")
        return self._explain_ids([list(input_ids)], self._methods(methods), target, options or {})[0]

    def _explain_ids(self, id_lists, methods, target, options) -> list[Explanation]:
        from alti import __version__

        input_ids, mask = self._pad(id_lists)
        trace = capture(self.model, self.adapter, input_ids, mask)
        probabilities = torch.softmax(trace.logits.double(), -1).cpu().numpy()
        explanations = []
        for row, ids in enumerate(id_lists):
            probs = probabilities[row]
            index = int(probs.argmax())
            cls_target = index if target is None else int(target)
            if not 0 <= cls_target < len(probs):
                raise InputError(
                    f"target class {cls_target} is out of range; this model has "
                    f"{len(probs)} classes: {', '.join(self.labels)}"
                )
            scores, layers, settings = {}, {}, {}
            for method, matrices in self._trace_matrices(trace, row, len(ids), methods).items():
                layers[method.name] = matrices.cpu().numpy()
                scores[method.name] = _target_row(matrices, 0, method.rolled)
                settings[method.name] = {
                    "kind": "trace",
                    "target_position": 0,
                    "scores_from": "rolled-out product" if method.rolled else "last layer",
                }
            for method in methods:
                if method.kind == "model":
                    opts = dict(options.get(method.name, {}))
                    unpadded = input_ids[row : row + 1, : len(ids)]  # right padding: a view
                    values = method.compute(self, unpadded, cls_target, **opts)
                    scores[method.name] = np.asarray(values, dtype=np.float64)
                    settings[method.name] = {"kind": "model", "target": cls_target, **opts}
            explanations.append(
                Explanation(
                    text="",
                    tokens=self.tokenizer.convert_ids_to_tokens(list(ids)),
                    input_ids=list(ids),
                    prediction=Prediction(
                        label=self.labels[index],
                        index=index,
                        probabilities=probs,
                        labels=list(self.labels),
                    ),
                    scores=scores,
                    layers=layers,
                    target_position=0,
                    special=self.special_mask(ids),
                    model_name=self.name,
                    settings=settings,
                    version=__version__,
                )
            )
        return explanations


def _target_row(matrices: torch.Tensor, position: int, rolled: bool) -> np.ndarray:
    """Row ``position`` of the rolled-out product (or of the last layer's matrix)."""
    row = matrices[-1, position]
    if rolled:
        for layer in reversed(matrices[:-1]):
            row = row @ layer
    return row.double().cpu().numpy()
