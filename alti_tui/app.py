"""The ``alti-tui`` application: one main screen, chosen by the service's type.

:class:`AltiApp` holds the :class:`~alti_tui.session.Session` and the main screen of its
mode: a :class:`~alti_tui.run_service.RunService` (an ``alti attribute`` file) gets the
:class:`~alti_tui.screens.run.RunScreen`, any other service (a model and its dataset) the
:class:`~alti_tui.screens.explore.ExploreScreen`.  The command line is :mod:`alti_tui.cli`.
"""

from __future__ import annotations

import gc
from pathlib import Path

from textual.app import App

from alti_tui.models import AnswerSettings, DatasetService
from alti_tui.run_service import RunService
from alti_tui.screens.explore import ExploreScreen
from alti_tui.screens.explorer import ExplorerScreen
from alti_tui.screens.run import RunScreen
from alti_tui.session import Session


class AltiApp(App[None]):
    """The explorer.  ``service`` is its only access to the engine; ``target`` / ``foil``
    are what every sample explains unless it says otherwise; ``answer`` how g answers."""

    CSS_PATH = "app.tcss"
    TITLE = "alti"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    def __init__(
        self,
        service: DatasetService | RunService,
        methods: list[str] | None = None,
        export_dir: Path | str = "alti-exports",
        label: str = "",
        target: str | None = None,
        foil: str | None = None,
        answer: AnswerSettings | None = None,
    ) -> None:
        super().__init__()
        self.session = Session(service.hold_slow_work, (target, foil), answer)
        #: The main screen, of the service's mode.
        self.explorer: ExplorerScreen
        if isinstance(service, RunService):
            self.explorer = RunScreen(self.session, service, methods, Path(export_dir))
        else:
            self.explorer = ExploreScreen(self.session, service, methods, Path(export_dir))
        self.sub_title = label or "loading…"

    def get_default_screen(self) -> ExplorerScreen:
        return self.explorer

    def on_unmount(self) -> None:
        gc.unfreeze()  # the heap frozen at load is the collector's again once the app is gone
