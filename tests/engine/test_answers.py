"""Whole answers (GUIDE §1.8): every step of one forward pass equals the naive loop that
explains ``prompt + answer[:i]`` one next token at a time, on every decoder family, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from naive_pre_ln import trace
from test_pre_ln import final_norm_of

from alti import Explainer
from alti.errors import InputError
from alti.targets import AnswerTarget
from tests.conftest import DECODER_TYPES, tiny_pre_ln

PROMPT = "the film was good and the cast"
ANSWER = " was great indeed and fun"
STEPPED = ["alti", "alti_logit", "logit", "rollout", "norm_rollout"]


@pytest.fixture(scope="module")
def lms():
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = Explainer(*tiny_pre_ln(kind, "causal_lm"))
        return cache[kind]

    return get


def naive_steps(ex: Explainer, e, methods, foil=None):
    """Each answer token explained alone, at the row before it, against the tokens before it."""
    start = e.target.start
    return [
        ex.explain_ids(e.input_ids[: start + i], methods, target=int(a), foil=foil) for i, a in enumerate(e.target.ids)
    ]


@pytest.mark.parametrize("kind", DECODER_TYPES)
def test_every_step_equals_the_next_token_explained_alone(kind, lms):
    ex = lms(kind)
    e = ex.explain(PROMPT, methods=STEPPED, answer=ANSWER)
    target = e.target
    assert isinstance(target, AnswerTarget) and target.start + target.steps == len(e.tokens)
    assert target.rows == list(range(target.start - 1, len(e.tokens) - 1))
    for i, one in enumerate(naive_steps(ex, e, STEPPED)):
        seen = target.start + i
        for method in STEPPED:
            np.testing.assert_allclose(e.steps[method][i][:seen], one.scores[method], atol=1e-10, err_msg=method)
            assert not e.steps[method][i][seen:].any(), method  # step i reads only the tokens before it
    for method in ("alti", "rollout", "norm_rollout"):  # shares: the mean of the steps
        np.testing.assert_allclose(e.scores[method], e.steps[method].mean(0), atol=1e-12)
    for method in ("alti_logit", "logit"):  # logits: their sum
        np.testing.assert_allclose(e.scores[method], e.steps[method].sum(0), atol=1e-12)
    assert e.special[target.start :].all()  # the answer is never deleted by the curves


def test_a_step_is_the_explanation_of_that_next_token(lms):
    """Explanation.step(i), what the explorer shows at step i: the naive next-token
    explanation's tokens, target, rows and per-layer matrices."""
    ex = lms("llama")
    e = ex.explain(PROMPT, methods=["alti", "rollout", "alti_logit", "gxi_dot"], answer=ANSWER)
    assert e.answer_steps == e.target.steps and "gxi_dot" not in e.steps
    for i, one in enumerate(naive_steps(ex, e, ["alti", "rollout", "alti_logit"])):
        step = e.step(i)
        assert step.tokens == one.tokens and step.input_ids == one.input_ids
        assert step.target == one.target and step.target_position == one.target_position
        assert step.prediction.ids == one.prediction.ids  # the model's top tokens at that row
        np.testing.assert_allclose(step.prediction.probabilities, one.prediction.probabilities, atol=1e-10)
        assert sorted(step.scores) == ["alti", "alti_logit", "rollout"]  # gradients: the whole answer only
        for method in step.scores:
            np.testing.assert_allclose(step.scores[method], one.scores[method], atol=1e-10, err_msg=method)
        for method in ("alti", "rollout"):
            np.testing.assert_allclose(step.layers[method], one.layers[method], atol=1e-10, err_msg=method)
        assert step.segments is e.segments and step.special.tolist() == e.special[: len(step.tokens)].tolist()
    assert e.step(0).prediction is e.prediction
    with pytest.raises(IndexError):
        e.step(e.target.steps)
    with pytest.raises(ValueError, match="whole answer"):
        e.step(0).step(0)


@pytest.mark.parametrize("kind", DECODER_TYPES)
def test_the_whole_answer_adds_up_to_the_sum_of_its_logits(kind, lms):
    ex = lms(kind)
    e = ex.explain(PROMPT, methods=["alti_logit"], answer=ANSWER)
    _, seen, _, _, final_norm = trace(ex.model, kind, torch.tensor([e.input_ids]))
    readout = ex.model.get_output_embeddings()
    offset = 1.0 if kind == "gemma" else 0.0
    with torch.no_grad():  # each step's logit from the final residual in float64
        exact = sum(
            float(
                readout.weight[a] @ final_norm_of(final_norm, seen["final"][-1][row], offset)
                + (0 if readout.bias is None else readout.bias[a])
            )
            for a, row in zip(e.target.ids, e.target.rows)
        )
    terms = e.logit_terms
    rebuilt = (
        e.scores["alti_logit"].sum()
        + sum(terms["attention_bias"])
        + sum(terms["mlp"])
        + terms["final_norm_bias"]
        + terms["head_bias"]
    )
    assert rebuilt == pytest.approx(exact, abs=1e-10)
    assert terms["logit"] == pytest.approx(exact, abs=1e-5)  # the model's own logits (float32 norms)


def test_a_foil_is_each_steps_logit_difference(lms):
    ex = lms("llama")
    e = ex.explain(PROMPT, methods=["alti_logit", "logit"], answer=ANSWER, foil="plot")
    assert e.target.foils is not None and len(set(e.target.foils)) == 1
    for i, one in enumerate(naive_steps(ex, e, ["alti_logit", "logit"], foil="plot")):
        for method in ("alti_logit", "logit"):
            np.testing.assert_allclose(e.steps[method][i][: e.target.start + i], one.scores[method], atol=1e-10)
    assert e.target.quantity == "sum of logit differences"


def test_gradients_explain_the_answers_log_probability(lms):
    ex = lms("gpt2")
    e = ex.explain(PROMPT, methods=["gxi_dot", "occlusion"], answer=ANSWER)
    ids = torch.tensor([e.input_ids])
    with torch.no_grad():
        logits = ex.model(input_ids=ids).logits[0].double()
    log_p = sum(float(torch.log_softmax(logits[row], -1)[a]) for a, row in zip(e.target.ids, e.target.rows))
    quantity = ex.quantities([e.input_ids], e.target)[0]
    assert quantity == pytest.approx(log_p, abs=1e-10)
    assert e.settings["gxi_dot"]["quantity"] == "log p(answer)"
    masked = list(e.input_ids)
    masked[2] = ex.tokenizer.unk_token_id
    assert e.scores["occlusion"][2] == pytest.approx(log_p - ex.quantities([masked], e.target)[0], abs=1e-10)


@pytest.mark.parametrize("foil", [None, " film"])
def test_per_step_gradients_are_each_next_token_explained_alone(lms, foil):
    """per_step=True: the gradient methods and occlusion explain each step as that next token
    (a backward pass per step); the whole answer is unchanged and the other methods' steps too."""
    ex = lms("llama")
    methods = ["alti", "gxi_dot", "ig_l2", "occlusion"]
    options = {"ig_l2": {"steps": 4}}
    e = ex.explain(PROMPT, methods=methods, answer=ANSWER, per_step=True, options=options, foil=foil)
    plain = ex.explain(PROMPT, methods=methods, answer=ANSWER, options=options, foil=foil)
    assert sorted(e.steps) == sorted(methods) and sorted(plain.steps) == ["alti"]
    for method in methods:
        np.testing.assert_allclose(e.scores[method], plain.scores[method], atol=1e-12, err_msg=method)
    start = e.target.start
    for i, a in enumerate(e.target.ids):
        one = ex.explain_ids(e.input_ids[: start + i], methods, target=int(a), foil=foil, options=options)
        for method in methods:
            np.testing.assert_allclose(e.steps[method][i][: start + i], one.scores[method], atol=1e-10, err_msg=method)
            assert not e.steps[method][i][start + i :].any()
    assert "backward pass per step" in e.settings["gxi_dot"]["steps"]
    assert e.step(1).scores.keys() == set(methods)
    with pytest.raises(InputError, match="per_step go with an answer"):
        ex.explain(PROMPT, methods=methods, per_step=True)


def test_a_generated_answer_is_the_greedy_continuation(lms):
    ex = lms("qwen2")
    e = ex.explain(PROMPT, methods=["alti"], generate=4)
    ids = list(e.input_ids[: e.target.start])
    for a in e.target.ids:  # each generated token is the argmax after the ones before it
        with torch.no_grad():
            assert int(ex.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()) == a
        ids.append(a)
    assert 1 <= e.target.steps <= 4


def test_generated_tokens_are_heard_as_they_come_and_can_be_stopped(lms):
    from alti import answers

    ex = lms("qwen2")
    heard: list[list[int]] = []
    prepared = answers.prepare(ex, PROMPT, generate_tokens=4, on_token=heard.append)
    assert heard == [list(prepared.target.ids[: i + 1]) for i in range(prepared.target.steps)]

    class Stop(Exception):
        pass

    def stop(answer):
        raise Stop

    with pytest.raises(Stop):  # the explorer stops a generation for a sample left this way
        answers.prepare(ex, PROMPT, generate_tokens=4, on_token=stop)


def test_segments_sum_their_tokens_and_skip_special_ones(lms):
    ex = lms("llama")
    prompt = "the film was good. the cast was great!\nthe plot was thin."
    e = ex.explain(prompt, methods=["alti", "alti_logit"], answer=" fun", segments="sentences")
    assert [s.text for s in e.segments] == ["the film was good.", "the cast was great!", "the plot was thin."]
    for segment in e.segments:
        assert not e.special[segment.start : segment.end].any()
        for method in ("alti", "alti_logit"):
            assert segment.score(e.scores[method]) == pytest.approx(e.scores[method][segment.start : segment.end].sum())
    lines = ex.explain(prompt, methods=["alti"], answer=" fun", segments="lines").segments
    assert [s.text for s in lines] == ["the film was good. the cast was great!", "the plot was thin."]
    spans = ex.explain(prompt, methods=["alti"], answer=" fun", segments=[(0, 8), (19, 27)]).segments
    assert [s.text for s in spans] == ["the film", "the cast"]
    doc = e.to_dict()
    assert [s["end"] for s in doc["segments"]] == [s.end for s in e.segments]
    assert doc["segments"][0]["scores"]["alti"] == pytest.approx(e.segments[0].score(e.scores["alti"]))


def test_the_json_of_an_answer(lms):
    ex = lms("gpt2")
    e = ex.explain(PROMPT, methods=["alti", "alti_logit"], answer=ANSWER)
    doc = e.to_dict()
    start, k = e.target.start, e.target.steps
    assert doc["answer"] == {"text": ANSWER, "ids": list(e.target.ids), "tokens": e.tokens, "start": start}
    assert [len(row) for row in doc["steps"]["alti"]] == [start + i for i in range(k)]
    assert len(doc["attributions"]["alti_logit"]) == start + k - 1
    assert doc["explained"]["kind"] == "answer" and doc["explained"]["quantity"] == "log p(answer)"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"answer": "   "}, "tokenizes to nothing"),
        ({"generate": 0}, "at least 1 token"),
        ({"answer": "x", "segments": "paragraphs"}, "unknown segments 'paragraphs'"),
        ({"answer": "x", "segments": [(5, 500)]}, "outside the prompt"),
        ({"answer": "x", "chat": True}, "no chat template; drop --chat"),
        ({"answer": "x", "system": "be brief"}, "add --chat"),
    ],
)
def test_bad_answer_input_is_one_line(lms, kwargs, message):
    with pytest.raises(Exception, match=message) as error:
        lms("gpt2").explain(PROMPT, methods=["alti"], **kwargs)
    assert "\n" not in str(error.value)


def test_an_answer_needs_a_causal_lm():
    from tests.conftest import tiny_model

    classifier = Explainer(*tiny_model("bert", torch.float64))
    with pytest.raises(InputError, match="explain a causal LM's answer"):
        classifier.explain("a good film", answer=" yes")


@pytest.mark.parametrize("kind", ["gpt2", "llama", "qwen2"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_a_padded_batch_of_answers_equals_each_alone(kind, side):
    """As test_padding_changes_nothing: left padding runs in float32 (a float64 model's eager mask
    turns fully masked padding rows into NaN)."""
    left = side == "left"
    ex = Explainer(*tiny_pre_ln(kind, "causal_lm", dtype=torch.float32 if left else torch.float64))
    ex.left_padding = left
    pairs = [(PROMPT, ANSWER), ("bad", " very bad"), ("the plot is thin but the acting is great", " and fun")]
    methods = ["alti", "alti_logit", "logit", "gxi_dot"]
    alone = [ex.explain(prompt, methods=methods, answer=answer) for prompt, answer in pairs]
    batch = ex.explain_answers_ids([e.input_ids for e in alone], [e.target for e in alone], methods)
    tolerance = 2e-5 if left else 1e-10
    for one, got in zip(alone, batch):
        assert got.target == one.target and got.input_ids == one.input_ids
        for method in methods:
            scale = max(1.0, np.abs(one.scores[method]).max())
            np.testing.assert_allclose(got.scores[method], one.scores[method], atol=tolerance * scale, err_msg=method)
            if method in one.steps:
                np.testing.assert_allclose(got.steps[method], one.steps[method], atol=tolerance * scale)


def test_a_chat_template_marks_its_own_tokens_special(lms):
    ex = Explainer(*tiny_pre_ln("llama", "causal_lm"))
    ex.tokenizer.chat_template = (
        "{% for m in messages %}[SEP] {{ m.role }} : {{ m.content }} [SEP]{% endfor %}"
        "{% if add_generation_prompt %} assistant :{% endif %}"
    )
    try:
        e = ex.explain("the film was good", methods=["alti"], answer=" yes it was", chat=True, system="be brief")
        turns = ex.explain(
            "the film was good", methods=["alti"], answer=" yes", chat=True, system="be brief", segments="turns"
        )
    finally:
        ex.tokenizer.chat_template = None
    prompt_tokens = list(zip(e.tokens[: e.target.start], e.special[: e.target.start]))
    words = [token for token, special in prompt_tokens if not special]
    assert words == ["be", "brief", "the", "film", "was", "good"]  # the two turns' contents only
    assert all(special for token, special in prompt_tokens if token in ("[SEP]", "system", "user", "assistant", ":"))
    assert [s.text for s in turns.segments] == ["be brief", "the film was good"]
