"""The explorer paints before torch is imported: nothing it imports at start pulls torch."""

from __future__ import annotations

import subprocess
import sys


def test_app_module_does_not_import_torch_or_transformers():
    code = (
        "import sys, alti_tui.app, alti_tui.cli, alti_tui.run_service, alti_tui.service; "
        "print(sorted(m for m in ('torch', 'transformers', 'captum') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_widgets_never_import_torch():
    import pathlib

    import alti_tui

    root = pathlib.Path(alti_tui.__file__).parent
    modules = ["messages.py", "models.py", "session.py", "app.py", "cli.py"]
    for path in [*root.glob("widgets/*.py"), *root.glob("screens/*.py"), *(root / name for name in modules)]:
        source = path.read_text()
        assert "import torch" not in source and "from torch" not in source, path


def test_session_and_models_are_plain_python():
    """The session and the data are tested, and usable, without Textual."""
    code = "import sys, alti_tui.models, alti_tui.session; print('textual' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
