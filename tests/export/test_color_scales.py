"""Colour scales: sequential for unsigned methods, diverging for signed ones."""

from __future__ import annotations

import colorsys
import subprocess
import sys

import numpy as np
import pytest

from alti.colors import DIVERGING, SEQUENTIAL, color_for, normalize, rich_style, scale_for, text_color


def hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0]


def test_scale_choice_follows_signedness():
    assert scale_for(False) is SEQUENTIAL and not SEQUENTIAL.signed
    assert scale_for(True) is DIVERGING and DIVERGING.signed
    assert color_for(0.5, True) == DIVERGING.rgb(0.5)


def test_sequential_darkens_monotonically_from_white():
    lum = [sum(SEQUENTIAL.rgb(v)) for v in np.linspace(0, 1, 21)]
    assert all(a > b for a, b in zip(lum, lum[1:]))
    assert min(SEQUENTIAL.rgb(0.0)) > 240


def test_diverging_has_white_centre_and_opposite_hues():
    assert min(DIVERGING.rgb(0.0)) > 240
    negative, positive = DIVERGING.rgb(-1.0), DIVERGING.rgb(1.0)
    assert negative[2] > negative[0] and positive[0] > positive[2]
    assert abs(hue(negative) - hue(positive)) > 0.3
    # symmetric darkness around zero
    assert abs(sum(DIVERGING.rgb(-0.6)) - sum(DIVERGING.rgb(0.6))) < 120


def test_values_outside_the_scale_are_clipped():
    assert SEQUENTIAL.rgb(7.0) == SEQUENTIAL.rgb(1.0)
    assert SEQUENTIAL.rgb(-3.0) == SEQUENTIAL.rgb(0.0)
    assert DIVERGING.rgb(-9.0) == DIVERGING.rgb(-1.0)
    assert SEQUENTIAL.rgb(float("nan")) == SEQUENTIAL.rgb(0.0)


def test_normalize_unsigned_divides_by_row_max():
    out = normalize([0.0, 1.0, 2.0, 4.0], signed=False)
    np.testing.assert_allclose(out, [0, 0.25, 0.5, 1.0])


def test_normalize_signed_keeps_sign_and_zero():
    out = normalize([-2.0, 0.0, 1.0], signed=True)
    np.testing.assert_allclose(out, [-1.0, 0.0, 0.5])


def test_normalize_ignores_special_tokens_for_the_peak():
    special = np.array([True, False, False, True])
    out = normalize([10.0, 1.0, 2.0, 0.5], signed=False, ignore=special)
    np.testing.assert_allclose(out, [1.0, 0.5, 1.0, 0.25])
    # all special: fall back to the whole row
    np.testing.assert_allclose(normalize([1.0, 2.0], False, ignore=[True, True]), [0.5, 1.0])


def test_normalize_degenerate_rows_are_zero():
    assert not normalize([0.0, 0.0], signed=False).any()
    assert not normalize([np.nan, np.inf], signed=True).any()
    assert normalize([], signed=False).shape == (0,)


def test_text_colour_is_readable():
    assert text_color(SEQUENTIAL.rgb(0.0)) == (0, 0, 0)
    assert text_color(SEQUENTIAL.rgb(1.0)) == (255, 255, 255)
    style = rich_style(1.0, SEQUENTIAL)
    assert style.bgcolor.get_truecolor() == SEQUENTIAL.rgb(1.0)


def test_samples_span_the_scale():
    samples = DIVERGING.samples(5)
    assert [v for v, _ in samples] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert all(c.startswith("#") and len(c) == 7 for _, c in samples)


@pytest.mark.subprocess
@pytest.mark.parametrize("module", ["alti.colors", "alti.export"])
def test_no_torch_or_textual_import(module):
    code = f"import sys, {module}; print('torch' in sys.modules, 'textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
