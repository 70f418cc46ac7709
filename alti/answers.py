"""Whole answers and their context (GUIDE §1.8): which parts of a prompt an answer came from.

This module owns what is particular to answers: the prompt as the model reads it (plain, or
formatted by the tokenizer's chat template, whose own tokens are marked special), the answer
(given, or generated greedily), the truncation that keeps the answer whole, and the prompt's
segments (sentences, lines, chat turns, or character spans).  The explanation itself is one
forward pass: :meth:`alti.Explainer.explain_answer_ids`.

>>> from alti import Explainer
>>> lm = Explainer.from_pretrained("smollm2")
>>> e = explain(lm, "Paris is in France. Rome is in Italy. Where is Rome?", answer=" In Italy.",
...             methods=["alti", "alti_logit"], segments="sentences")
>>> e.steps["alti"].shape, [s.text for s in e.segments]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alti.errors import InputError, UnsupportedModelError, check_utf8
from alti.results import Explanation, Segment
from alti.targets import AnswerTarget, token_id, token_text

#: the kinds of segments a prompt can be cut into by name
SEGMENT_KINDS = ("sentences", "lines", "turns")
#: where a sentence ends: after . ! or ? (and any closing quotes or brackets), before a space
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


@dataclass(frozen=True)
class Prompt:
    """A prompt as the model reads it: its token ids, each token's character span in
    ``text`` (the text tokenized: the prompt, or the chat template's rendering), which tokens
    the template added (special), and the character spans of the user's own text (the chat
    turns: system, then user)."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    text: str
    template: np.ndarray
    turns: list[tuple[int, int]]


def encode_prompt(explainer, prompt: str, chat: bool = False, system: str | None = None) -> Prompt:
    """The prompt's tokens, with a chat template's tokens marked (``chat``)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("the prompt is empty; give the context (and question) the answer is explained against")
    check_utf8(prompt, "the prompt")
    tokenizer = explainer.tokenizer
    if system is not None and not chat:
        raise InputError("--system sets the chat template's system turn; add --chat")
    if not chat:
        encoded = tokenizer(prompt, return_offsets_mapping=True)
        ids, offsets = list(encoded["input_ids"]), [tuple(span) for span in encoded["offset_mapping"]]
        template = np.array([i in explainer.special_ids for i in ids], dtype=bool)
        return Prompt(ids, offsets, prompt, template, [(0, len(prompt))])
    if not getattr(tokenizer, "chat_template", None):
        raise UnsupportedModelError(
            f"{explainer.name}'s tokenizer has no chat template; drop --chat (the prompt is then read as plain text)"
        )
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": prompt}
    ]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    turns, searched = [], 0
    for message in messages:
        begin = text.find(message["content"], searched)
        if begin < 0:
            raise UnsupportedModelError(f"{explainer.name}'s chat template rewrites the messages; drop --chat")
        turns.append((begin, begin + len(message["content"])))
        searched = begin + len(message["content"])
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), [tuple(span) for span in encoded["offset_mapping"]]
    inside = [any(b <= start and end <= e for b, e in turns) and end > start for start, end in offsets]
    template = np.array([not kept for kept in inside], dtype=bool)
    return Prompt(ids, offsets, text, template, turns)


def stop_ids(explainer) -> set[int]:
    """The tokens that end a generated answer: end of text, and a chat model's end of turn."""
    stops = {explainer.tokenizer.eos_token_id}
    configured = getattr(getattr(explainer.model, "generation_config", None), "eos_token_id", None)
    stops.update(configured if isinstance(configured, list) else [configured])
    return {int(i) for i in stops if i is not None}


def generate(
    explainer, ids: Sequence[int], tokens: int, on_token: Callable[[list[int]], None] | None = None
) -> list[int]:
    """Up to ``tokens`` tokens after ``ids``, greedily, stopping before an end-of-text or
    end-of-turn token.  ``on_token(answer)`` hears of each token as it is generated (the
    answer so far; it may raise to stop the generation)."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    if tokens < 1:
        raise InputError(f"--generate must be at least 1 token, not {tokens}")
    stops = stop_ids(explainer)

    class Heard(BaseStreamer):
        """generate() pushes the prompt, then each new token."""

        def __init__(self) -> None:
            self.prompt_seen = False
            self.answer: list[int] = []

        def put(self, value) -> None:
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            chosen = int(value.reshape(-1)[0])
            if chosen not in stops and on_token is not None:
                self.answer.append(chosen)
                on_token(list(self.answer))

        def end(self) -> None:
            pass

    prompt = torch.tensor([list(ids)], device=explainer.device)
    with torch.inference_mode():
        out = explainer.model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=sorted(stops) or None,
            pad_token_id=explainer.pad_id,
            streamer=Heard() if on_token is not None else None,
        )
    answer: list[int] = []
    for chosen in out[0, prompt.shape[1] :].tolist():
        if chosen in stops:
            break
        answer.append(int(chosen))
    if not answer:
        raise InputError("the model ends its answer at once (its first token is end of text or of its turn)")
    return answer


def spans(kind: str | Sequence[tuple[int, int]], prompt: Prompt) -> list[tuple[int, int]]:
    """Character spans of ``prompt.text`` for segments ``kind``: sentences or lines of the
    user's text, the chat turns, or the spans given (offsets into the prompt as the user wrote
    it; with a chat template, into its user turn)."""
    if not isinstance(kind, str):
        user = prompt.turns[-1]
        given = []
        for pair in kind:
            begin, end = int(pair[0]), int(pair[1])
            if not 0 <= begin < end <= user[1] - user[0]:
                raise InputError(f"the segment ({begin}, {end}) is outside the prompt's {user[1] - user[0]} characters")
            given.append((user[0] + begin, user[0] + end))
        return given
    if kind == "turns":
        return list(prompt.turns)
    if kind not in SEGMENT_KINDS:
        raise InputError(f"unknown segments {kind!r}; use one of {', '.join(SEGMENT_KINDS)} or character spans")
    splitter = SENTENCE_END if kind == "sentences" else re.compile(r"\n+")
    found = []
    for begin, end in prompt.turns:
        start = begin
        for cut in splitter.finditer(prompt.text, begin, end):
            found.append((start, cut.start()))
            start = cut.end()
        found.append((start, end))
    return [(b, e) for b, e in found if prompt.text[b:e].strip()]


def segments(kind: str | Sequence[tuple[int, int]], prompt: Prompt, special: np.ndarray) -> list[Segment]:
    """The prompt's segments as token spans: a token belongs to the segment its first
    character falls in; special tokens (the template's too) belong to none, and a segment
    that holds no token is left out."""
    out = []
    for begin, end in spans(kind, prompt):
        inside = [
            t
            for t, (start, stop) in enumerate(prompt.offsets)
            if not special[t] and stop > start and begin <= start < end
        ]
        if inside:
            out.append(Segment(prompt.text[begin:end].strip(), inside[0], inside[-1] + 1))
    return out


@dataclass
class Prepared:
    """One answer ready to explain: its input ids and target, and what places its tokens in
    the prompt (for the template's special tokens, truncation and segments)."""

    prompt: str
    read: Prompt
    kept: np.ndarray
    ids: list[int]
    target: AnswerTarget


def prepare(
    explainer,
    prompt: str,
    answer: str | None = None,
    generate_tokens: int | None = None,
    chat: bool = False,
    system: str | None = None,
    foil: int | str | None = None,
    on_token: Callable[[list[int]], None] | None = None,
) -> Prepared:
    """The input and target of ``answer`` (or of the ``generate_tokens`` the model writes
    greedily, each heard by ``on_token`` as it comes) after ``prompt``, truncated to what is
    explained (the answer whole)."""
    if (answer is None) == (generate_tokens is None):
        raise InputError("give the answer (--answer TEXT) or how many tokens to generate (--generate N), one of them")
    if explainer.head.task != "causal_lm":
        raise InputError(
            f"--answer and --generate explain a causal LM's answer; {explainer.name} is a "
            f"{explainer.head.task.replace('_', ' ')} (drop them to explain its prediction)"
        )
    read = encode_prompt(explainer, prompt, chat, system)
    tokenizer = explainer.tokenizer
    if answer is not None:
        check_utf8(answer, "the answer")
        answer_ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"]) if answer.strip() else []
        if not answer_ids:
            raise InputError("the answer tokenizes to nothing; give some words")
    else:
        answer_ids = generate(explainer, read.ids, int(generate_tokens or 0), on_token)
    ids, kept = truncated(explainer, read, answer_ids)
    foils = None
    if foil is not None:
        foil_id, _ = token_id(tokenizer, foil, explainer.vocab_size, "foil")
        foils = [foil_id] * len(answer_ids)
    text = answer if answer is not None else tokenizer.decode(answer_ids)
    target = AnswerTarget.of(answer_ids, len(ids), text, [token_text(tokenizer, i) for i in answer_ids], foils)
    return Prepared(prompt, read, kept, ids + answer_ids, target)


def finish(explanation: Explanation, prepared: Prepared, segments_of=None) -> Explanation:
    """The explanation of ``prepared`` as the user wrote it: the prompt as its text, the chat
    template's tokens special, truncation said, and the prompt's segments."""
    read, kept = prepared.read, prepared.kept
    template = np.concatenate([read.template[kept], np.zeros(prepared.target.steps, dtype=bool)])
    assert explanation.special is not None
    explanation.special = explanation.special | template
    explanation.text = prepared.prompt
    explanation.truncated = len(kept) < len(read.ids)
    if segments_of is not None:
        trimmed = Prompt(
            prepared.ids[: prepared.target.start],
            [read.offsets[t] for t in kept],
            read.text,
            read.template[kept],
            read.turns,
        )
        explanation.segments = segments(segments_of, trimmed, explanation.special)
    return explanation


def explain(
    explainer,
    prompt: str,
    methods: Sequence[str] | None = None,
    answer: str | None = None,
    generate_tokens: int | None = None,
    chat: bool = False,
    system: str | None = None,
    segments_of: str | Sequence[tuple[int, int]] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    foil: int | str | None = None,
    per_step: bool = False,
) -> Explanation:
    """Explain ``answer`` (or the ``generate_tokens`` the model writes greedily) after
    ``prompt``: every answer token against the prompt and the answer before it, and the whole
    answer (:meth:`alti.Explainer.explain_answer_ids`).  ``foil``: a token every step is
    contrasted with (its logit difference); ``segments_of``: sentences, lines, turns or
    character spans of the prompt, each scored as the sum of its tokens; ``per_step``: the
    gradient methods and occlusion explain each step too."""
    prepared = prepare(explainer, prompt, answer, generate_tokens, chat, system, foil)
    explanation = explainer.explain_answer_ids(prepared.ids, prepared.target, methods, options, per_step)
    return finish(explanation, prepared, segments_of)


def explain_samples(
    explainer,
    samples: Sequence,
    methods: Sequence[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    generate_tokens: int | None = None,
    chat: bool = False,
    system: str | None = None,
    segments_of: str | None = None,
    foil: int | str | None = None,
    batch_size: int = 8,
) -> list[Explanation]:
    """The answers of a dataset's samples (:class:`alti.data.Sample` with ``prompted``): each
    its own answer, or ``generate_tokens`` generated; explained in padded batches of
    ``batch_size``.  A sample's own ``segments`` (character spans) come before
    ``segments_of``; a sample with ``support`` and no segments is cut into sentences."""
    prepared = []
    for sample in samples:
        if sample.answer is None and not generate_tokens:
            raise InputError(f"sample {sample.id} has no answer; give --generate N to generate one")
        tokens = None if sample.answer is not None else generate_tokens
        try:
            prepared.append(prepare(explainer, sample.text, sample.answer, tokens, chat, system, foil))
        except InputError as error:
            raise InputError(f"sample {sample.id}: {error}") from None
    explained: list[Explanation] = []
    for start in range(0, len(prepared), batch_size):
        chunk = prepared[start : start + batch_size]
        explained += explainer.explain_answers_ids([p.ids for p in chunk], [p.target for p in chunk], methods, options)
    out = []
    for sample, ready, explanation in zip(samples, prepared, explained):
        kind = sample.segments if sample.segments is not None else segments_of
        if kind is None and sample.support is not None:
            kind = "sentences"
        out.append(finish(explanation, ready, kind))
    return out


def truncated(explainer, prompt: Prompt, answer_ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """The prompt's ids that fit before the answer within the explained length (its leading
    special tokens and its end; the answer is never cut), and which of the prompt's tokens
    they are."""
    room = explainer.max_length - len(answer_ids)
    total = len(prompt.ids)
    if total <= room:
        return list(prompt.ids), np.arange(total)
    lead = 0
    while lead < total and prompt.ids[lead] in explainer.special_ids:
        lead += 1
    if room <= lead:
        raise InputError(
            f"the answer's {len(answer_ids)} tokens leave no room for the prompt within the "
            f"{explainer.max_length} explained; raise --max-tokens or shorten the answer"
        )
    kept = np.concatenate([np.arange(lead), np.arange(total - (room - lead), total)])
    return [prompt.ids[t] for t in kept], kept
