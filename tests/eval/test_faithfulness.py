"""Deletion curves on hand-built cases with known answers."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import spearmanr

from alti import faithfulness as F
from alti.errors import InputError

CLS, SEP, MASK = 101, 102, 103


class FakeExplainer:
    """p(class 1) = 0.1 + 0.8 * (weight of the words present) / (weight of all words)."""

    def __init__(self, weights: dict[int, float]):
        self.weights = weights
        self.total = sum(weights.values())
        self.calls: list[list[tuple[int, ...]]] = []
        self.tokenizer = SimpleNamespace(mask_token_id=MASK)

    def probability(self, ids) -> float:
        return 0.1 + 0.8 * sum(self.weights.get(i, 0.0) for i in ids) / self.total

    def predict_ids(self, id_lists, batch_size=32):
        assert len(id_lists) <= batch_size
        self.calls.append([tuple(ids) for ids in id_lists])
        p = np.array([self.probability(ids) for ids in id_lists])
        return np.stack([1 - p, p], axis=1)

    def quantities(self, id_lists, target, batch_size=32):
        return self.predict_ids(id_lists, batch_size)[:, target.index]


def sentence(n):
    """[CLS] w1 .. wn [SEP] with word ids 1..n; word i weighs i."""
    ids = [CLS, *range(1, n + 1), SEP]
    special = [True] + [False] * n + [True]
    return ids, np.array(special), FakeExplainer({i: float(i) for i in range(1, n + 1)})


@pytest.mark.parametrize(
    "n, expected",
    [(10, [0, 1, 1, 1, 2, 5]), (30, [0, 1, 2, 3, 6, 15]), (7, [0, 1, 1, 1, 2, 4]), (200, [0, 2, 10, 20, 40, 100])],
)
def test_bin_sizes_are_ceil_of_q_times_n(n, expected):
    assert F.Protocol().ks(n) == expected


def test_one_by_one_steps_stop_at_the_limit():
    assert F.Protocol(steps="one").ks(4) == [0, 1, 2, 3, 4]
    assert F.Protocol(steps="one", limit=2).ks(4) == [0, 1, 2]


def test_comprehensiveness_and_sufficiency_with_a_perfect_ranking():
    ids, special, explainer = sentence(10)
    scores = {"perfect": np.array([9.0, *range(1, 11), 9.0])}  # specials score high: still never deleted
    curves = F.sample_curves(explainer, ids, special, scores, target=1)
    comp, suff = curves[("perfect", "comprehensiveness")], curves[("perfect", "sufficiency")]
    total = 55.0
    p = lambda weight: 0.1 + 0.8 * weight / total  # noqa: E731
    assert comp.ks == [0, 1, 1, 1, 2, 5]
    assert comp.p_full == pytest.approx(explainer.probability(ids)) == pytest.approx(p(total))
    assert comp.raw[0] == pytest.approx(comp.p_full)
    top = lambda k: sum(range(10, 10 - k, -1))  # noqa: E731
    assert comp.raw == pytest.approx([p(total - top(k)) for k in comp.ks])
    assert suff.raw == pytest.approx([p(top(k)) for k in suff.ks])
    assert suff.raw[0] == pytest.approx(0.1)  # only [CLS] and [SEP] left
    assert comp.score == pytest.approx(sum(comp.p_full - v for v in comp.values[1:]) / 6)
    assert suff.score == pytest.approx(sum(comp.p_full - v for v in suff.values[1:]) / 6)
    fractions = [k / 10 for k in comp.ks]
    assert comp.fractions == pytest.approx(fractions)
    assert comp.aupc == pytest.approx(np.trapezoid(comp.values, fractions))


def test_special_tokens_are_kept_and_bins_delete_k_tokens():
    ids, special, explainer = sentence(30)
    scores = {"m": np.arange(len(ids), dtype=float)}
    points = list(F.sample_points(explainer, ids, special, scores, target=1))
    seen = {seq for call in explainer.calls for seq in call}
    for seq in seen:
        assert seq[0] == CLS and seq[-1] == SEP
    by_key = {(p.metric, p.step): p for p in points}
    for step, k in enumerate(F.Protocol().ks(30)):
        kept_comp = [i for i in range(1, 31) if i <= 30 - k]  # highest scores (last words) deleted first
        assert by_key[("comprehensiveness", step)].probability == pytest.approx(
            explainer.probability([CLS, *kept_comp, SEP])
        )
        assert by_key[("sufficiency", step)].probability == pytest.approx(
            explainer.probability([CLS, *range(31 - k, 31), SEP])
        )


def test_mask_deletion_keeps_the_length():
    ids, special, explainer = sentence(4)
    protocol = F.Protocol(deletion="mask", steps="one")
    list(F.sample_points(explainer, ids, special, {"m": np.arange(6.0)}, target=1, protocol=protocol))
    seen = {seq for call in explainer.calls for seq in call}
    assert (CLS, 1, 2, MASK, MASK, SEP) in seen  # comprehensiveness, k = 2
    assert (CLS, MASK, MASK, MASK, MASK, SEP) in seen  # sufficiency, k = 0
    assert all(len(seq) == len(ids) for seq in seen)


def test_envelope_is_the_running_min_and_max_of_the_raw_curve():
    # word 2 has a negative weight: deleting it raises the probability.
    ids = [CLS, 1, 2, 3, SEP]
    special = np.array([True, False, False, False, True])
    explainer = FakeExplainer({1: 1.0, 2: -0.5, 3: 3.0})
    scores = {"m": np.array([0, 2.0, 2.5, 3.0, 0])}  # ranks 3, 2, 1
    raw = F.sample_curves(explainer, ids, special, scores, 1, F.Protocol(steps="one", envelope=False))
    env = F.sample_curves(explainer, ids, special, scores, 1, F.Protocol(steps="one"))
    comp_raw = raw[("m", "comprehensiveness")].values
    assert comp_raw[2] > comp_raw[1]  # not monotone
    assert env[("m", "comprehensiveness")].values == pytest.approx(list(itertools.accumulate(comp_raw, min)))
    suff_raw = raw[("m", "sufficiency")].values
    assert env[("m", "sufficiency")].values == pytest.approx(list(itertools.accumulate(suff_raw, max)))
    assert env[("m", "comprehensiveness")].raw == pytest.approx(comp_raw)
    assert env[("m", "comprehensiveness")].protocol["curve"] == "envelope"
    assert raw[("m", "comprehensiveness")].protocol["curve"] == "raw"


def test_inputs_are_batched_deduplicated_and_the_generator_stops_early():
    ids, special, explainer = sentence(10)
    scores = {"a": np.arange(12.0), "b": np.arange(12.0)[::-1].copy()}
    points = list(F.sample_points(explainer, ids, special, scores, target=1, batch_size=4))
    assert len(points) == 2 * 2 * 6
    assert [p.done for p in points] == list(range(1, 25))
    sequences = [seq for call in explainer.calls for seq in call]
    assert len(sequences) == len(set(sequences))
    assert all(len(call) <= 4 for call in explainer.calls)

    ids, special, explainer = sentence(10)
    generator = F.sample_points(explainer, ids, special, scores, target=1, batch_size=4)
    next(generator)
    generator.close()
    assert len(explainer.calls) == 1


def test_target_defaults_to_the_predicted_class():
    ids, special, explainer = sentence(3)
    point = next(F.sample_points(explainer, ids, special, {"m": np.zeros(5)}))
    assert point.probability == pytest.approx(0.9)  # class 1 (p = 0.9 on the full input), not class 0


def test_bad_inputs_are_one_line_errors():
    ids, special, explainer = sentence(3)
    with pytest.raises(InputError, match="scores"):
        list(F.sample_points(explainer, ids, special, {"m": np.zeros(3)}))
    with pytest.raises(InputError, match="deletion"):
        F.Protocol(deletion="drop")


def test_summary_averages_samples_and_records_the_protocol():
    per_sample = []
    for n in (4, 10):
        ids, special, explainer = sentence(n)
        per_sample.append(F.sample_curves(explainer, ids, special, {"m": np.arange(n + 2.0)}, 1))
    evaluation = F.summarize(per_sample, ["m"], F.Protocol())
    data = evaluation.to_dict()
    assert data["samples"] == 2
    assert data["protocol"]["deletion"] == "remove" and data["protocol"]["curve"] == "envelope"
    expected = np.mean([s[("m", "comprehensiveness")].score for s in per_sample])
    assert data["methods"]["m"]["comprehensiveness"] == pytest.approx(expected)
    assert set(data["methods"]["m"]) == {
        "comprehensiveness",
        "sufficiency",
        "aupc_comprehensiveness",
        "aupc_sufficiency",
    }


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 12).astype(float)
    b = rng.normal(size=12)
    assert F.spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert np.isnan(F.spearman(np.ones(3), b[:3]))


def test_agreement_compares_non_special_tokens():
    explanations = [
        SimpleNamespace(
            scores={
                "a": np.array([9.0, 1, 2, 3, -9]),
                "b": np.array([0.0, 3, 2, 1, 0]),
                "c": np.array([5.0, 1, 2, 3, 0]),
            },
            special=np.array([True, False, False, False, True]),
        )
    ]
    table = F.agreement(explanations, ["a", "b", "c"])
    assert table["a"]["b"] == pytest.approx(-1.0)
    assert table["b"]["a"] == pytest.approx(-1.0)
    assert table["a"]["c"] == pytest.approx(1.0)
    assert table["a"]["a"] == pytest.approx(1.0)
