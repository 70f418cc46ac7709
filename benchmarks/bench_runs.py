"""How fast the explorer opens and sorts a whole run (``alti-tui --attributions``).

    python benchmarks/bench_runs.py [--launches 3] [--switches 40] [--big 10000]

1. A run of the 96 embedded samples is written once with the demo model (ALTI family and
   attention, with deletion curves) into ``--workdir``.
2. *Launch*: a fresh ``python`` process opens the run headless (Textual's test driver,
   160 x 48) and reports when the first sample's rows are painted; the time counts from
   just before the process is spawned (interpreter, imports, reading the file; no model).
3. *Switch*: ``n`` through the samples, the time until the next sample's rows are
   painted, (a) while the recorded model still loads behind the rows and (b) once it is
   loaded (each switch then also computes the heatmap's matrices in a worker).
4. *10,000 samples*: the 96 records copied with jittered scores into a run of ``--big``
   short samples; a fresh process reports when the list is painted, then each sort key is
   applied and timed until the re-sorted list is painted.

Targets (issue 11, 2-core CPU): first rows <= 1.5 s, switch <= 0.1 s, the 10,000-sample list
<= 3 s, a sort <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_tui import PaintWatch, row
from harness import cpu_name

SIZE = (160, 48)
METHODS = "alti,rollout,norm_rollout,globenc,attention"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/alti-bench-runs", help="where the run files are written")
    parser.add_argument("--launches", type=int, default=3)
    parser.add_argument("--switches", type=int, default=40, help="samples switched to, per mode")
    parser.add_argument("--big", type=int, default=10_000, help="samples of the generated run")
    parser.add_argument("--child", choices=("launch", "big"), help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def base_run(workdir: Path) -> Path:
    path = workdir / "samples96.jsonl"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        alti = Path(sys.executable).parent / "alti"
        command = [str(alti), "attribute", "--methods", METHODS, "--curves", "--output", str(path)]
        subprocess.run(command, check=True)
    return path


def big_run(base: Path, count: int, workdir: Path) -> Path:
    path = workdir / f"samples{count}.jsonl"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    records = [json.loads(line) for line in base.read_text(encoding="utf-8").splitlines()]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            record = dict(records[i % len(records)])
            record["id"] = str(i)
            record["scores"] = {
                m: [float(v) * float(rng.uniform(0.5, 1.5)) for v in values] for m, values in record["scores"].items()
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def app_for(path: str):
    from alti_tui.app import AltiApp
    from alti_tui.run_service import RunService

    service = RunService(path)
    service.open_run()
    return AltiApp(service), service


def child_launch(path: str) -> None:
    app, _ = app_for(path)

    async def run() -> float:
        watch = PaintWatch(app)
        watch.expect(0)
        async with app.run_test(size=SIZE) as pilot:
            await watch.wait()
            shown = time.time() - (time.perf_counter() - watch.at)
            await pilot.press("q")
        return shown

    print(json.dumps({"shown": asyncio.run(run())}))


async def painted(app) -> float:
    """The time of the next screen refresh."""
    done = asyncio.Event()
    at = [0.0]

    def mark() -> None:
        at[0] = time.perf_counter()
        done.set()

    app.call_after_refresh(mark)
    await done.wait()
    return at[0]


def child_big(path: str) -> None:
    from alti.runs import Order

    app, service = app_for(path)
    methods = service.run.methods

    async def run() -> dict:
        watch = PaintWatch(app)
        watch.expect(0)
        result = {}
        async with app.run_test(size=SIZE) as pilot:
            await watch.wait()
            result["shown"] = time.time() - (time.perf_counter() - watch.at)
            orders = [
                Order("confidence"),
                Order("misclassified"),
                Order("disagreement", tuple(methods[:2])),
                Order("comprehensiveness", (methods[0],)),
                Order("length"),
                Order(),
            ]
            for order in orders:
                begin = time.perf_counter()
                app.explorer.order = order
                app.explorer.browser.rearrange(app.explorer._order_note())
                result[order.describe()] = await painted(app) - begin
            await pilot.press("q")
        return result

    print(json.dumps(asyncio.run(run())))


def spawn(kind: str, path: Path) -> dict:
    start = time.time()
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--run", str(path)], capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"the launched app failed:\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["shown"] -= start  # the wall-clock time the rows were painted, from the spawn
    return report


def switches(path: Path, count: int) -> dict[str, list[float]]:
    app, _ = app_for(str(path))
    times: dict[str, list[float]] = {"loading": [], "loaded": []}

    async def run() -> None:
        watch = PaintWatch(app)
        watch.expect(0)
        async with app.run_test(size=SIZE) as pilot:
            await watch.wait()
            order = list(range(1, len(app.session.samples)))
            for mode in ("loading", "loaded"):
                if mode == "loaded":
                    while not app.explorer.model_ready:
                        await pilot.pause(0.05)
                for index in order[:count] if mode == "loading" else order[-count:]:
                    if mode == "loading" and app.explorer.model_ready:
                        break
                    watch.expect(index)
                    start = time.perf_counter()
                    app.explorer.browser.option_list.highlighted = app.explorer.browser.shown.index(index)
                    times[mode].append(await watch.wait() - start)
                    await pilot.pause(0.02)
            await pilot.press("q")

    asyncio.run(run())
    return times


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child == "launch":
        child_launch(args.run)
        return 0
    if args.child == "big":
        child_big(args.run)
        return 0
    workdir = Path(args.workdir)
    base = base_run(workdir)
    big = big_run(base, args.big, workdir)
    print(f"CPU {cpu_name()}, {os.cpu_count()} cores; Textual headless at {SIZE[0]}x{SIZE[1]}")
    print(f"runs: {base} (96 samples), {big} ({args.big} samples, {big.stat().st_size / 1e6:.1f} MB)")
    launch = [spawn("launch", base)["shown"] for _ in range(args.launches)]
    times = switches(base, args.switches)
    big_report = spawn("big", big)
    print(f"\n{'measure (seconds)':<34} {'n':>4} {'median':>8} {'p90':>8} {'max':>8} {'target':>7} {'':>5}")
    print(row("launch -> first rows (96)", launch, 1.5))
    if times["loading"]:
        print(row("switch, model loading -> rows", times["loading"], 0.1))
    print(row("switch, model loaded -> rows", times["loaded"], 0.1))
    print(row(f"launch -> list of {args.big} painted", [big_report.pop("shown")], 3.0))
    for name, value in big_report.items():
        print(row(f"sort: {name}", [value], 1.0))
    print("\nsort times include repainting the list; a sort's per-sample statistics are kept for the next")
    return 0


if __name__ == "__main__":
    sys.exit(main())
