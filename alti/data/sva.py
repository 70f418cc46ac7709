"""Subject-verb agreement: explain a masked LM at its ``[MASK]``.

Each item (see ``load_dataset("sva:PATH")``) is a sentence with ``[MASK]`` at
the verb and two forms, the correct and the wrong one.  The model's "classes"
are those two forms: ``p(correct) = softmax(logit[correct], logit[wrong])``
read at the ``[MASK]`` position.  :class:`AgreementExplainer` presents that as
a two-class classifier (labels ``[correct, wrong]``) with the interface the
methods and :mod:`alti.faithfulness` use (``model``, ``tokenizer``,
``adapter``, ``device``, ``special_mask``, ``predict_ids``), so:

- trace methods (ALTI, attention, rollout, ...) are read at the ``[MASK]``
  row instead of ``[CLS]``;
- gradient methods and occlusion attribute ``p(correct)`` (class 0);
- deletion curves keep ``[CLS]``, ``[SEP]`` and ``[MASK]`` and read
  ``p(correct)`` wherever the ``[MASK]`` moved to.  Deletion by removal only:
  replacing tokens by ``[MASK]`` would make the verb position ambiguous.

Each form must be one token of the model's vocabulary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alti.errors import DatasetError, InputError, ModelLoadError, UnsupportedModelError
from alti.results import Explanation, Prediction

CORRECT = 0


def load_masked_lm(name_or_path: str, device: str = "auto", trust_remote_code: bool = False):
    """An :class:`alti.Explainer` around a masked LM, loaded from a directory or the Hub cache."""
    import os

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from alti.data import _hub_reachable, _offline_by_env
    from alti.explainer import Explainer, resolve_device

    local = os.path.isdir(name_or_path) or _offline_by_env() or not _hub_reachable()
    options = dict(local_files_only=local, trust_remote_code=trust_remote_code)
    try:
        model = AutoModelForMaskedLM.from_pretrained(name_or_path, attn_implementation="eager", **options)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **options)
    except ValueError as exc:
        raise UnsupportedModelError(
            f"{name_or_path} cannot be loaded as a masked LM ({str(exc).splitlines()[0]}); "
            "subject-verb agreement needs a *ForMaskedLM checkpoint such as bert-base-uncased"
        ) from None
    except OSError as exc:
        raise ModelLoadError(
            f"cannot load the masked LM {name_or_path} ({str(exc).splitlines()[0]}); "
            "give a local directory or a cached Hugging Face name"
        ) from None
    if tokenizer.mask_token_id is None:
        raise UnsupportedModelError(f"{name_or_path} has no mask token; agreement needs a masked LM")
    return Explainer(model, tokenizer, name=name_or_path, device=resolve_device(device))


class _PairHead(torch.nn.Module):
    """The masked LM reduced to the logits of two verb forms at the verb's ``[MASK]``.

    The verb is read at ``position`` when it is set (inputs of the original
    length that hold other masks too: the integrated-gradients baseline,
    occlusion), else at the one ``[MASK]`` of each row (inputs with tokens
    removed).
    """

    def __init__(self, model: torch.nn.Module, mask_id: int, forms: tuple[int, int]):
        super().__init__()
        self.model = model
        self.mask_id = mask_id
        self.forms = list(forms)
        self.position: int | None = None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        if self.position is None:
            positions = (input_ids == self.mask_id).int().argmax(dim=1)
        else:
            positions = torch.full((input_ids.shape[0],), self.position, device=input_ids.device)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        return _Output(logits[rows, positions][:, self.forms])


class _Output:
    def __init__(self, logits: torch.Tensor):
        self.logits = logits


class AgreementExplainer:
    """One agreement item seen as a two-class problem: [correct form, wrong form]."""

    def __init__(self, explainer, correct: str, wrong: str):
        tokenizer = explainer.tokenizer
        self.base = explainer
        self.tokenizer = tokenizer
        self.adapter = explainer.adapter
        self.device = explainer.device
        self.name = explainer.name
        self.labels = [correct, wrong]
        forms = (self._form_id(correct), self._form_id(wrong))
        self.model = _PairHead(explainer.model, int(tokenizer.mask_token_id), forms)

    def _form_id(self, form: str) -> int:
        ids = self.tokenizer(form, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise DatasetError(f"the verb form {form!r} is {len(ids)} tokens for this model; agreement needs one")
        return int(ids[0])

    @contextlib.contextmanager
    def verb_at(self, position: int):
        """Read the verb at ``position`` while inputs may hold other ``[MASK]`` tokens."""
        self.model.position = position
        try:
            yield self
        finally:
            self.model.position = None

    def special_mask(self, input_ids: Sequence[int]) -> np.ndarray:
        return self.base.special_mask(input_ids)

    def predict_ids(self, id_lists: Sequence[Sequence[int]], batch_size: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(id_lists), batch_size):
            input_ids, mask = self.base._pad(id_lists[start : start + batch_size])
            with torch.inference_mode():
                logits = self.model(input_ids, attention_mask=mask).logits
            out.append(torch.softmax(logits.double(), -1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2))


def explain_agreement(
    explainer, sample, methods: Sequence[str], options: dict[str, dict[str, Any]] | None = None
) -> tuple[Explanation, AgreementExplainer]:
    """Explain ``p(correct)`` at the ``[MASK]`` of one agreement sample (``sample.extra`` has the forms)."""
    from alti import __version__
    from alti.methods import get_method

    try:
        correct, wrong = sample.extra["correct"], sample.extra["wrong"]
    except KeyError:
        raise DatasetError(f"sample {sample.id} has no verb forms; load it with --dataset sva:PATH") from None
    pair = AgreementExplainer(explainer, correct, wrong)
    ids = explainer.encode(sample.text)
    positions = [j for j, i in enumerate(ids) if i == explainer.tokenizer.mask_token_id]
    if len(positions) != 1:
        raise InputError(f"sample {sample.id} has {len(positions)} [MASK] tokens; agreement needs exactly one")
    position = positions[0]
    chosen = [get_method(name) for name in methods]
    trace = [m.name for m in chosen if m.kind == "trace"]
    matrices = explainer.layer_matrices(ids, trace) if trace else {}
    probabilities = pair.predict_ids([ids])[0]
    scores, settings = {}, {}
    for method in chosen:
        if method.kind == "trace":
            row = matrices[method.name][-1][position]
            if method.rolled:
                for layer in matrices[method.name][-2::-1]:
                    row = row @ layer
            scores[method.name] = np.asarray(row, dtype=np.float64)
            settings[method.name] = {"kind": "trace", "target_position": position}
        else:
            opts = dict((options or {}).get(method.name, {}))
            ids_tensor = torch.as_tensor([ids], dtype=torch.long, device=explainer.device)
            with pair.verb_at(position):
                values = method.compute(pair, ids_tensor, CORRECT, **opts)
            scores[method.name] = np.asarray(values, dtype=np.float64)
            settings[method.name] = {"kind": "model", "target": CORRECT, **opts}
    index = int(np.argmax(probabilities))
    explanation = Explanation(
        text=sample.text,
        tokens=explainer.tokenizer.convert_ids_to_tokens(ids),
        input_ids=list(ids),
        prediction=Prediction(label=pair.labels[index], index=index, probabilities=probabilities, labels=pair.labels),
        scores=scores,
        layers={},
        target_position=position,
        special=explainer.special_mask(ids),
        truncated=len(ids) < len(explainer.tokenizer(sample.text)["input_ids"]),
        model_name=explainer.name,
        settings=settings,
        version=__version__,
    )
    return explanation, pair
