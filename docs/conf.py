"""Sphinx configuration: markdown pages (MyST), the API reference from the docstrings (autodoc)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's alti, also where another copy is installed

import alti  # noqa: E402

project = "alti"
author = "the alti authors"
copyright = "the alti authors"
release = version = alti.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]

myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
# alti.core.triton_l1 imports triton, which the test extra installs on Linux only
autodoc_mock_imports = [] if importlib.util.find_spec("triton") else ["triton"]

html_theme = "furo"
html_title = f"alti {release}"
html_static_path = ["_static"]
