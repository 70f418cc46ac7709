"""How fast the explorer shows ALTI: at launch, and when the sample changes.

    python benchmarks/bench_tui.py [--model demo] [--dataset samples] [--launches 3] [--samples 30]

1. *Launch*: a fresh ``python`` process starts ``alti-tui`` headless (Textual's
   test driver, 160 x 48) and reports when the first sample's ALTI row is on
   screen; the time counts from just before the process is spawned, so it
   includes the interpreter, the imports and loading the model.
2. *Switch*: in one app, ``n`` is pressed for each sample of up to 64 tokens,
   and the time until the new sample's ALTI-family rows are painted is taken,
   (a) once the previous sample has settled (slow methods and curves done) and
   (b) while the previous sample's integrated gradients / curves still run.
3. *Engine*: ``Explainer.explain`` of the same samples with the ALTI-family
   methods alone, through the app's service once nothing else runs in the app.

Targets (issue 5, the demo model on a 2-core CPU): launch <= 5 s, switch <= 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

MAX_TOKENS = 64
SIZE = (160, 48)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--dataset", default="samples")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--methods", default=None, help="comma-separated (default: the app's)")
    parser.add_argument("--launches", type=int, default=3, help="0 skips the launch measure")
    parser.add_argument("--samples", type=int, default=30, help="samples switched to, per mode")
    parser.add_argument("--child-launch", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def methods_of(args) -> list[str] | None:
    return [m for m in args.methods.split(",") if m] if args.methods else None


class PaintWatch:
    """Marks the moment the screen has been refreshed with sample ``index``'s ALTI row.

    It wraps the app's ``_show_explanation`` and asks for a callback after the
    next screen refresh, so the time is taken when the rows are painted, not
    when the result merely arrived.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.index: int | None = None
        self.painted = asyncio.Event()
        self.at = 0.0
        show = app.explorer._show_explanation

        def watched() -> None:
            show()
            explanation = app.session.explanation
            if (
                not self.painted.is_set()
                and app.session.sample_index == self.index
                and explanation is not None
                and "alti" in explanation.scores
            ):
                app.call_after_refresh(self._mark)

        app.explorer._show_explanation = watched

    def _mark(self) -> None:
        if not self.painted.is_set():
            self.at = time.perf_counter()
            self.painted.set()

    def expect(self, index: int) -> None:
        self.index = index
        self.painted.clear()

    async def wait(self, limit_s: float = 600.0) -> float:
        deadline = time.perf_counter() + limit_s
        while not self.painted.is_set():
            if self.app.explorer.load_error:
                raise RuntimeError(self.app.explorer.load_error)
            if time.perf_counter() > deadline:
                raise TimeoutError("the ALTI rows never appeared")
            try:
                await asyncio.wait_for(self.painted.wait(), 0.5)
            except TimeoutError:
                pass
        return self.at


async def settled(pilot) -> None:
    app = pilot.app
    while app.session.pending or app.explorer.curves.status != "done":
        await pilot.pause(0.05)


def child_launch(args) -> None:
    """Runs in the spawned process: print the wall-clock time ALTI was painted."""
    from alti_tui.app import AltiApp
    from alti_tui.service import EngineService

    service = EngineService(model=args.model, dataset=args.dataset, device=args.device)
    app = AltiApp(service, methods=methods_of(args))

    async def run() -> tuple[float, dict]:
        watch = PaintWatch(app)
        watch.expect(0)
        async with app.run_test(size=SIZE) as pilot:
            await watch.wait()
            shown = time.time() - (time.perf_counter() - watch.at)
            phases = {"tokens": len(app.session.explanation.tokens)}
            await pilot.press("q")
        return shown, phases

    shown, phases = asyncio.run(run())
    print(json.dumps({"shown": shown, **phases}))


def launches(args) -> list[tuple[float, int]]:
    out = []
    for _ in range(args.launches):
        start = time.time()
        command = [
            sys.executable,
            __file__,
            "--child-launch",
            "--model",
            args.model,
            "--dataset",
            args.dataset,
            "--device",
            args.device,
        ]
        if args.methods:
            command += ["--methods", args.methods]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"the launched app failed:\n{result.stderr[-2000:]}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        out.append((report["shown"] - start, report["tokens"]))
    return out


def switches(args) -> tuple[dict[str, list[float]], list[int], list[float]]:
    from alti_tui.app import AltiApp
    from alti_tui.service import EngineService

    service = EngineService(model=args.model, dataset=args.dataset, device=args.device)
    app = AltiApp(service, methods=methods_of(args))
    times: dict[str, list[float]] = {"settled": [], "busy": []}
    lengths: list[int] = []

    async def run() -> None:
        watch = PaintWatch(app)
        watch.expect(0)
        async with app.run_test(size=SIZE) as pilot:
            await watch.wait()
            short = short_indices(app, service)[: args.samples]
            for mode in ("settled", "busy"):
                for index in short:
                    if index == app.session.sample_index:
                        continue
                    if mode == "settled":
                        await settled(pilot)
                    watch.expect(index)
                    start = time.perf_counter()
                    app.explorer.browser.option_list.highlighted = app.explorer.browser.shown.index(index)
                    times[mode].append(await watch.wait() - start)
                    if mode == "settled":
                        lengths.append(len(app.session.explanation.tokens))
            await settled(pilot)
            fast = [m for m in app.session.methods if app.session.info.is_fast(m)]
            for index in short:
                start = time.perf_counter()
                service.explain(app.session.samples[index].text, fast)
                engine.append(time.perf_counter() - start)
            await pilot.press("q")

    engine: list[float] = []
    asyncio.run(run())
    return times, lengths, engine


def short_indices(app, service) -> list[int]:
    return [i for i, s in enumerate(app.session.samples) if len(service.explainer.encode(s.text)) <= MAX_TOKENS]


def row(name: str, values: list[float], target: float | None) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    verdict = "" if target is None else ("ok" if p90 <= target else "OVER")
    return (
        f"{name:<34} {len(values):>4} {statistics.median(values):>8.3f} {p90:>8.3f} "
        f"{values[-1]:>8.3f} {'' if target is None else f'{target:.1f}':>7} {verdict:>5}"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child_launch:
        child_launch(args)
        return 0
    import torch

    print(
        f"model {args.model} · dataset {args.dataset} · device {args.device} · "
        f"{os.cpu_count()} CPUs · torch threads {torch.get_num_threads()}"
    )
    launch = launches(args)
    times, lengths, engine = switches(args)
    print(f"\n{'measure (seconds)':<34} {'n':>4} {'median':>8} {'p90':>8} {'max':>8} {'target':>7} {'':>5}")
    if launch:
        print(row("launch -> first ALTI rows", [t for t, _ in launch], 5.0))
    print(row("switch (settled) -> ALTI rows", times["settled"], 0.5))
    print(row("switch (IG/curves busy) -> ALTI rows", times["busy"], 0.5))
    print(row("engine: explain, ALTI family only", engine, None))
    print(
        f"\ntokens per switched sample: {min(lengths)}-{max(lengths)} (<= {MAX_TOKENS})"
        + (f"; first sample at launch: {launch[0][1]} tokens" if launch else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
