"""The demo classifier on torch and ``tokenizers`` alone, without transformers' model classes.

Importing transformers' BERT classes takes about 4 s on a 2-core machine, twice as long as torch
itself, and every ``alti explain`` and ``alti-tui`` launch with the demo model paid it. The demo
model is one fixed, small BERT, so it runs on this compact implementation instead. Its module
tree and parameter names are those of transformers' ``BertForSequenceClassification`` (eager
attention, post-LN, absolute positions, erf GELU), so the bert adapter, the base weights and the
delta apply unchanged; ``tests/demo`` checks that its logits, tokens and ALTI equal those of
transformers' model and tokenizer. Dropout is left out: the demo model is for inference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn


@dataclass
class DemoConfig:
    """The fields of a BERT ``config.json`` that the model and alti read."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    pad_token_id: int
    id2label: dict[int, str] = field(default_factory=dict)
    _name_or_path: str = ""
    model_type: str = "bert"
    _attn_implementation: str = "eager"
    _SET_HERE = ("id2label", "_name_or_path", "model_type", "_attn_implementation")

    @classmethod
    def from_json(cls, path: Path, labels, name: str) -> DemoConfig:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("model_type") != "bert" or raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path} is not a BERT with GELU activations")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path} does not use absolute position embeddings")
        return cls(
            **{key: raw[key] for key in cls.__dataclass_fields__ if key in raw and key not in cls._SET_HERE},
            id2label=dict(enumerate(labels)),
            _name_or_path=name,
        )

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in self.id2label.items()}


@dataclass
class ClassifierOutput:
    logits: torch.Tensor


def _embedding(rows: int, size: int, padding_idx: int | None = None) -> nn.Embedding:
    """An embedding without random initialisation (its weights are always loaded; on the meta
    device, ``nn.Embedding``'s ``normal_`` init would import torch._dynamo, about 2 s)."""
    return nn.Embedding(rows, size, padding_idx=padding_idx, _weight=torch.empty(rows, size))


class Embeddings(nn.Module):
    def __init__(self, config: DemoConfig):
        super().__init__()
        self.word_embeddings = _embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.position_embeddings = _embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = _embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(hidden + self.position_embeddings(positions))


class SelfAttention(nn.Module):
    """Returns ``(mixed values, attention probabilities (B, H, n, n))`` like transformers' eager BERT."""

    def __init__(self, config: DemoConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        query, key, value = (
            self._heads(self.query(hidden)),
            self._heads(self.key(hidden)),
            self._heads(self.value(hidden)),
        )
        scores = torch.matmul(query, key.transpose(2, 3)) * self.scaling + additive_mask
        probs = torch.softmax(scores, dim=-1)
        mixed = torch.matmul(probs, value).transpose(1, 2).reshape(hidden.shape)
        return mixed, probs


class ResidualNorm(nn.Module):
    """``LayerNorm(dense(x) + residual)``: the ``attention.output`` and ``output`` blocks."""

    def __init__(self, in_features: int, config: DemoConfig):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, config: DemoConfig):
        super().__init__()
        self.self = SelfAttention(config)
        self.output = ResidualNorm(config.hidden_size, config)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        mixed, _ = self.self(hidden, additive_mask)
        return self.output(mixed, hidden)


class Intermediate(nn.Module):
    def __init__(self, config: DemoConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, config: DemoConfig):
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = ResidualNorm(config.intermediate_size, config)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, additive_mask)
        return self.output(self.intermediate(attended), attended)


class Encoder(nn.Module):
    def __init__(self, config: DemoConfig):
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))


class Pooler(nn.Module):
    def __init__(self, config: DemoConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class BertModel(nn.Module):
    def __init__(self, config: DemoConfig):
        super().__init__()
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config)


class NativeBertForSequenceClassification(nn.Module):
    """``bert`` (embeddings, encoder, pooler) and a linear ``classifier`` on the pooled [CLS]."""

    base_model_prefix = "bert"

    def __init__(self, config: DemoConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    @property
    def base_model(self) -> BertModel:
        return self.bert

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> ClassifierOutput:
        """Logits (B, C). The attention modules always return their probabilities (for hooks),
        so ``output_attentions`` is accepted and changes nothing."""
        hidden = self.bert.embeddings(input_ids, token_type_ids)
        if attention_mask is None:
            additive = torch.zeros((), dtype=hidden.dtype, device=hidden.device)
        else:
            additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in self.bert.encoder.layer:
            hidden = layer(hidden, additive)
        return ClassifierOutput(logits=self.classifier(self.bert.pooler(hidden)))


def build_classifier(config: DemoConfig, weights: dict[str, torch.Tensor]) -> NativeBertForSequenceClassification:
    """The model holding exactly ``weights`` (transformers' parameter names), in eval mode.

    Built on the meta device (no memory, no random init), then given the tensors of ``weights``.
    """
    with torch.device("meta"):
        model = NativeBertForSequenceClassification(config)
    model.load_state_dict(weights, strict=True, assign=True)
    return model.eval()


class WordPieceTokenizer:
    """The slice of transformers' fast-tokenizer interface that alti uses, on ``tokenizers``.

    Calls are stateless (truncation is applied to the encoding, never set on the shared Rust
    tokenizer), so threads may tokenize at the same time.
    """

    bos_token_id = None
    eos_token_id = None

    def __init__(self, directory: Path):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        settings = json.loads((Path(directory) / "tokenizer_config.json").read_text(encoding="utf-8"))
        self.model_max_length = int(settings.get("model_max_length", 512))
        special = {
            name: self._tokenizer.token_to_id(settings.get(name, token))
            for name, token in (
                ("cls_token", "[CLS]"),
                ("sep_token", "[SEP]"),
                ("pad_token", "[PAD]"),
                ("mask_token", "[MASK]"),
                ("unk_token", "[UNK]"),
            )
        }
        if None in special.values():
            raise ValueError(f"{directory}'s vocabulary lacks a special token: {special}")
        self.cls_token_id = special["cls_token"]
        self.sep_token_id = special["sep_token"]
        self.pad_token_id = special["pad_token"]
        self.mask_token_id = special["mask_token"]
        self.unk_token_id = special["unk_token"]

    def _ids(self, body: list[int], truncation: bool, max_length: int | None, add_special_tokens: bool) -> list[int]:
        room = (max_length or self.model_max_length) - (2 if add_special_tokens else 0)
        if truncation:
            body = body[: max(room, 0)]
        return [self.cls_token_id, *body, self.sep_token_id] if add_special_tokens else list(body)

    def __call__(
        self,
        text: str | list[str],
        truncation: bool = False,
        max_length: int | None = None,
        add_special_tokens: bool = True,
        padding: bool = False,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> dict:
        """``{"input_ids", "token_type_ids", "attention_mask"}`` for one text or a list of texts;
        ``padding`` pads a list to its longest, ``return_tensors="pt"`` gives torch tensors."""
        texts = [text] if isinstance(text, str) else list(text)
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        ids = [self._ids(e.ids, truncation, max_length, add_special_tokens) for e in encodings]
        width = max((len(row) for row in ids), default=0) if padding else 0
        masks = [[1] * len(row) + [0] * (width - len(row)) for row in ids]
        ids = [row + [self.pad_token_id] * (width - len(row)) for row in ids]
        out = {"input_ids": ids, "token_type_ids": [[0] * len(row) for row in ids], "attention_mask": masks}
        if return_tensors == "pt":
            out = {key: torch.tensor(value, dtype=torch.long) for key, value in out.items()}
        elif return_tensors is not None:
            raise ValueError(f"return_tensors={return_tensors!r}: only 'pt' is supported")
        return (
            {key: value[0] for key, value in out.items()} if isinstance(text, str) and return_tensors is None else out
        )

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self._tokenizer.id_to_token(int(i)) for i in ids]
