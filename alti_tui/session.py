"""What the explorer explains now, and which work still counts for it (plain Python, no Textual).

A :class:`Session` owns the state every mode shares: the model's info, the samples, the
methods shown, the sample or typed text explained, its explanation and the methods still
pending, and the targets chosen per sample.  It also owns the protocol that keeps slow
work out of the way:

* a **generation** number, raised each time another text is explained; a worker's result
  carries the generation it was computed for, and one that is no longer current is dropped;
* the **slow-work hold**: from a switch until the new sample's fast rows are painted, the
  service holds its slow work and no slow method takes its turn;
* the **slow turn**: one slow method (gradients, occlusion) computes at a time; a waiter
  whose sample has been left gives up its place instead of queueing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from alti_tui.models import AnswerSettings, ListedSample, ModelInfo, TargetAndFoil

if TYPE_CHECKING:
    from alti.results import Explanation

#: How often a waiter for the slow turn looks whether it was cancelled, in seconds.
POLL_S = 0.05


class Session:
    """``hold_service(held)`` is the service's :meth:`~alti_tui.models.ModelService.hold_slow_work`;
    ``default`` the target and foil of every sample without its own (``--target`` / ``--foil``);
    ``answer_settings`` how ``g`` answers."""

    def __init__(
        self,
        hold_service: Callable[[bool], None],
        default: TargetAndFoil = (None, None),
        answer_settings: AnswerSettings | None = None,
    ) -> None:
        self._hold_service = hold_service
        self.default = default
        #: How g answers a prompt (``alti-tui --generate/--chat/--system/--segments``).
        self.answer_settings = answer_settings or AnswerSettings()
        #: Targets and foils chosen with ``c``, per sample (or typed text).
        self.choices: dict[tuple, TargetAndFoil] = {}
        #: What the current explanation was asked for.
        self.request: TargetAndFoil = (None, None)
        self.info: ModelInfo | None = None
        self.samples: list[ListedSample] = []
        self.methods: list[str] = []
        self.sample_index: int | None = None
        self.text: str | None = None
        self.explanation: Explanation | None = None
        #: Methods of the current text still computing.
        self.pending: list[str] = []
        #: Answers generated with ``g`` (or read from a run file), per sample or typed text:
        #: that text is explained as its answer from then on.
        self.answers: dict[tuple, Explanation] = {}
        #: The answer step shown (``None``: the whole answer), when an answer is shown.
        self.step: int | None = None
        self.generation = 0
        #: Held while a slow method (gradients, occlusion) computes for some sample.
        self._slow_turn = threading.Lock()
        #: Set once the current sample's fast rows are painted: its slow methods start after.
        self._rows_painted = threading.Event()
        self._rows_painted.set()

    # ------------------------------------------------------------ generations
    def begin(self, text: str) -> int:
        """``text`` is explained from now on: what was computed for older texts no longer counts."""
        self.generation += 1
        self.text = text
        return self.generation

    def is_current(self, generation: int) -> bool:
        return generation == self.generation

    # ------------------------------------------------------------- slow work
    def hold_slow_work(self, held: bool) -> None:
        """Hold the slow work (``True``: until the new rows are painted) or let it go on."""
        self._hold_service(held)
        if held:
            self._rows_painted.clear()
        else:
            self._rows_painted.set()

    def rows_painted(self, generation: int) -> None:
        """The fast rows of ``generation`` are painted: slow work may go on (unless a newer text waits)."""
        if self.is_current(generation):
            self.hold_slow_work(False)

    @contextmanager
    def slow_turn(self, cancelled: Callable[[], bool]) -> Iterator[bool]:
        """``with session.slow_turn(cancelled) as mine:``, ``mine`` once the rows are painted and
        no other slow method computes; ``False`` when ``cancelled()`` came true while waiting.

        Cancelled workers give up while they wait, so stale gradients never queue up
        behind each other (nor fill the thread pool the workers run in).
        """
        mine = self._take_slow_turn(cancelled)
        try:
            yield mine
        finally:
            if mine:
                self._slow_turn.release()

    def _take_slow_turn(self, cancelled: Callable[[], bool]) -> bool:
        while not self._rows_painted.wait(timeout=POLL_S):
            if cancelled():
                return False
        while not self._slow_turn.acquire(timeout=POLL_S):
            if cancelled():
                return False
        return True

    # ---------------------------------------------------------------- targets
    def key(self, text: str | None = None) -> tuple:
        """What a chosen target belongs to: the current sample, or a typed text."""
        if self.sample_index is not None:
            return ("sample", self.sample_index)
        return ("text", self.text if text is None else text)

    def choose(self, key: tuple, choice: TargetAndFoil) -> None:
        """The target and foil chosen with ``c`` for ``key``'s sample or text (its next
        token, not an answer generated before)."""
        self.choices[key] = choice
        self.answers.pop(key, None)

    # ---------------------------------------------------------------- answers
    def given_answer(self) -> AnswerSettings | None:
        """How the current sample of an answer dataset is explained: ``g``'s settings with the
        sample's own answer (teacher-forced) and segments; None for typed text, samples with no
        answer and models that do not answer."""
        if self.sample_index is None or self.info is None or not self.info.answers:
            return None
        sample = self.samples[self.sample_index]
        if sample.answer is None:
            return None
        return replace(self.answer_settings, answer=sample.answer, spans=sample.segments)

    def answer(self) -> Explanation | None:
        """The answer the current sample or text is explained as, if one was generated."""
        return self.answers.get(self.key())

    def shown(self) -> Explanation | None:
        """What the panels show: the explanation, or the answer step chosen."""
        explanation = self.explanation
        if explanation is None or self.step is None or not explanation.answer_steps:
            return explanation
        return explanation.step(min(self.step, explanation.answer_steps - 1))

    def move_step(self, delta: int) -> bool:
        """Move the answer-step cursor: before step 1 is the whole answer.  False when no
        answer is shown."""
        explanation = self.explanation
        if explanation is None or not explanation.answer_steps:
            return False
        position = -1 if self.step is None else self.step
        position = max(-1, min(explanation.answer_steps - 1, position + delta))
        self.step = None if position < 0 else position
        return True

    def has_choice(self) -> bool:
        """A target was chosen with ``c`` for the current sample or text."""
        return self.key() in self.choices

    def request_for(self, text: str) -> TargetAndFoil:
        """The target and foil to explain ``text`` with: chosen with ``c``, else the
        sample's own (language models), else ``--target`` / ``--foil``."""
        key = self.key(text)
        if key in self.choices:
            return self.choices[key]
        target, foil = self.default
        if self.sample_index is not None and self.info is not None and self.info.is_lm:
            sample = self.samples[self.sample_index]
            target = sample.target if sample.target is not None else target
            foil = sample.foil if sample.foil is not None else foil
        return target, foil
