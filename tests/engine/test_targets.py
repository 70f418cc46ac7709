"""Targets as types: each kind owns its behaviour, files round-trip, and no other module
compares kind names."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from alti import targets as T
from alti.errors import InputError, UnsupportedModelError
from alti.results import Prediction

ROOT = Path(__file__).resolve().parents[2]
KINDS = [T.ClassTarget, T.NextTokenTarget, T.MaskedTokenTarget]


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize("foil", [None, 3])
def test_every_kind_round_trips_through_its_dict(cls, foil):
    target = cls(5, foil, 2, "five", None if foil is None else "three")
    data = target.to_dict()
    assert data["kind"] == cls.kind
    again = T.Target.from_dict(data)
    assert type(again) is cls and again == target


def test_heads_choose_their_kind_and_a_bare_encoder_has_none():
    assert T.for_task("classifier") is T.ClassTarget
    assert T.for_task("causal_lm") is T.NextTokenTarget
    assert T.for_task("masked_lm") is T.MaskedTokenTarget
    with pytest.raises(UnsupportedModelError):
        T.for_task("encoder")
    with pytest.raises(InputError, match="unknown kind of target 'summary'"):
        T.kind_named("summary")
    assert T.kind_named(None) is T.ClassTarget  # records written before kinds were recorded


def test_each_kind_reads_its_own_row_and_quantity():
    logits = torch.tensor([[2.0, 0.0, 1.0]], dtype=torch.float64)
    probabilities = torch.softmax(logits, -1)[0]
    assert T.ClassTarget(2).value(logits).item() == pytest.approx(probabilities[2].item())
    assert T.ClassTarget(2, foil=1).value(logits).item() == pytest.approx(1.0)
    masked = T.MaskedTokenTarget(0, 2, position=1)
    assert masked.value(logits).item() == pytest.approx(torch.softmax(torch.tensor([2.0, 1.0]), -1)[0].item())
    ids = [5, 9, 103, 7]
    assert T.ClassTarget(1, position=0).row_in(ids, 103) == 0
    assert T.NextTokenTarget(1, position=3).row_in(ids[:2], 103) == 1  # the last token, whatever was deleted
    assert masked.row_in(ids, 103) == 2 and masked.row_in([103, 103], 103) == 1
    keep = np.array([True, False, False])
    assert T.NextTokenTarget(1).keeps(keep.copy()).tolist() == [True, False, True]
    assert T.ClassTarget(1).keeps(keep.copy()).tolist() == [True, False, False]


def test_each_kind_words_itself():
    token = T.NextTokenTarget(7, 9, 4, " Paris", " London")
    assert token.describe() == "explaining ' Paris' against ' London'"
    assert token.curve_label() == ("logit difference", "logit(' Paris') − logit(' London')")
    assert token.spec() == ("id:7", "id:9")
    label = T.ClassTarget(1, None, 0, "positive")
    assert label.describe() == "explaining p(positive)" and label.spec() == ("positive", None)
    assert label.is_default(Prediction("positive", 1, np.array([0.2, 0.8]), ["negative", "positive"]))
    assert T.MaskedTokenTarget(1, 2, 3, "are", "is").curve_label() == ("probability", "p('are' vs 'is')")


def test_no_module_but_the_targets_compares_kind_names():
    """The kind names live in alti/targets.py; everything else asks a target (or its type)."""
    pattern = re.compile(
        r"""["'](next_token|masked_token)["']|kind\s*[!=]=\s*["']class["']|["']kind["']\s*:\s*["']class["']"""
    )
    found = []
    for path in [*ROOT.glob("alti/**/*.py"), *ROOT.glob("alti/**/*.js"), *ROOT.glob("alti_tui/**/*.py")]:
        if path.name == "targets.py" and path.parent.name == "alti":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
