"""The pages' style, script and markup are package data (``alti/assets``), read with
importlib.resources, registered for the wheel, and inlined into each page, which still
needs no network."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from alti import __version__, export, report
from alti.results import Explanation, Prediction
from alti.runs import read_run
from tests.export.test_report import write_run

ASSETS = ("report.css", "report.js", "report-controls.html", "explain.css")
PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def packaged(name: str) -> str:
    return (resources.files("alti") / "assets" / name).read_text(encoding="utf-8")


def assert_needs_no_network(page: str) -> None:
    assert re.search(r"<link\b", page) is None
    assert re.search(r"<script\b[^>]*\bsrc\s*=", page) is None
    assert re.search(r"https?:", page) is None


@pytest.mark.parametrize("name", ASSETS)
def test_each_asset_is_a_package_resource_read_by_asset(name):
    assert (resources.files("alti") / "assets" / name).is_file()
    assert packaged(name).strip()
    assert export.asset(name) == packaged(name)


def test_every_asset_is_registered_as_package_data():
    patterns = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["alti"]
    folder = resources.files("alti") / "assets"
    names = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    assert set(ASSETS) <= set(names)
    for name in names:
        assert any(fnmatch.fnmatch(f"assets/{name}", pattern) for pattern in patterns), name


def test_the_report_inlines_its_style_script_and_controls(tmp_path):
    path = tmp_path / "run.jsonl"
    write_run(path, count=3)
    page = report.to_html(read_run(str(path)))
    assert f"<style>\n{packaged('report.css')}\n" in page
    assert f"\n{packaged('report-controls.html')}\n" in page
    assert f"<script>\n{packaged('report.js')}</script>" in page
    assert_needs_no_network(page)


def test_the_html_export_inlines_its_style():
    tokens = ["[CLS]", "great", "cast", "[SEP]"]
    explanation = Explanation(
        text="great cast",
        tokens=tokens,
        input_ids=[101, 102, 103, 104],
        prediction=Prediction("positive", 1, np.array([0.25, 0.75]), ["negative", "positive"]),
        scores={"alti": np.linspace(0.0, 1.0, len(tokens))},
        model_name="tiny",
        version=__version__,
    )
    page = export.to_html(explanation)
    assert f"<style>\n{packaged('explain.css')}</style>" in page
    assert_needs_no_network(page)
