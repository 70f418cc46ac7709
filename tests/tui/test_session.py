"""The explorer's session without Textual: generations, the slow-work hold and turn, chosen targets."""

from __future__ import annotations

import threading
import time

from alti.targets import NextTokenTarget
from alti_tui.models import ListedSample, ModelInfo, TargetAndFoil
from alti_tui.session import Session

LM = ModelInfo("lm", [], {}, target=NextTokenTarget)
CLASSIFIER = ModelInfo("classifier", ["negative", "positive"], {})


def session(holds: list[bool] | None = None, default: TargetAndFoil = (None, None)) -> Session:
    """A session whose service records each hold of its slow work in ``holds``."""
    return Session((holds if holds is not None else []).append, default)


def test_a_stale_generation_is_refused_and_cannot_release_the_hold():
    holds: list[bool] = []
    s = session(holds)
    first = s.begin("first text")
    s.hold_slow_work(True)
    second = s.begin("second text")
    s.hold_slow_work(True)
    assert s.text == "second text"
    assert not s.is_current(first) and s.is_current(second)
    s.rows_painted(first)  # the first text's rows, painted late: the second's are not
    assert holds == [True, True]
    s.rows_painted(second)
    assert holds == [True, True, False]


def waiter(s: Session, cancelled: threading.Event, outcome: list) -> threading.Thread:
    def wait() -> None:
        with s.slow_turn(cancelled.is_set) as mine:
            outcome.append(mine)

    thread = threading.Thread(target=wait)
    thread.start()
    return thread


def test_slow_turns_wait_for_the_rows_and_a_cancelled_waiter_gives_up():
    s = session()
    s.hold_slow_work(True)
    cancelled = threading.Event()
    outcome: list[bool] = []
    thread = waiter(s, cancelled, outcome)
    thread.join(0.2)
    assert thread.is_alive()  # the rows are not painted yet
    cancelled.set()
    thread.join(2)
    assert outcome == [False]
    # it gave up its place: the next sample's slow method takes the turn once its rows are painted
    s.hold_slow_work(False)
    outcome.clear()
    waiter(s, threading.Event(), outcome).join(2)
    assert outcome == [True]


def test_one_slow_turn_at_a_time_and_a_cancelled_waiter_leaves_the_queue():
    s = session()
    s.hold_slow_work(False)
    order: list[str] = []
    entered, leave = threading.Event(), threading.Event()

    def first() -> None:
        with s.slow_turn(lambda: False) as mine:
            assert mine
            entered.set()
            leave.wait(5)
            order.append("first done")

    running = threading.Thread(target=first)
    running.start()
    entered.wait(2)
    cancelled = threading.Event()
    stale: list[bool] = []
    stale_thread = waiter(s, cancelled, stale)
    cancelled.set()
    stale_thread.join(2)
    assert stale == [False] and not stale_thread.is_alive()  # gave up while the first ran
    fresh: list[bool] = []
    fresh_thread = waiter(s, threading.Event(), fresh)
    time.sleep(0.2)
    assert fresh == []  # waits for the first
    leave.set()
    running.join(2)
    fresh_thread.join(2)
    assert order == ["first done"] and fresh == [True]


def test_chosen_targets_belong_to_their_sample_or_typed_text():
    s = session(default=(None, " London"))
    s.info = LM
    s.samples = [ListedSample("The capital of France is", target=" Paris"), ListedSample("Once upon a")]
    s.sample_index = 0
    s.begin(s.samples[0].text)
    assert s.request_for(s.text) == (" Paris", " London")  # the sample's own target, the default foil
    s.choose(s.key(), ("id:7001", None))
    assert s.has_choice() and s.request_for(s.text) == ("id:7001", None)
    s.sample_index = 1
    s.begin(s.samples[1].text)
    assert not s.has_choice() and s.request_for(s.text) == (None, " London")
    # the same words typed are not the sample: no choice of the sample's applies to them
    s.sample_index = None
    s.begin("The capital of France is")
    assert not s.has_choice() and s.request_for(s.text) == (None, " London")
    s.choose(s.key(), (" Rome", None))
    s.sample_index = 0
    s.begin(s.samples[0].text)
    assert s.request_for(s.text) == ("id:7001", None)
    s.sample_index = None
    assert s.request_for("The capital of France is") == (" Rome", None)


def test_a_classifier_sample_keeps_the_default_target():
    s = session(default=("positive", None))
    s.info = CLASSIFIER
    s.samples = [ListedSample("fine", "negative", target="negative")]
    s.sample_index = 0
    assert s.request_for("fine") == ("positive", None)
