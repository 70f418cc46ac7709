"""The HTML report of a large run: how long it takes to write, how big it is, and how the page
behaves in headless Chromium (time to the first rows, scrolling, paging to the end, sorting).

A run of ``--samples`` records is made from a seed run (``--seed FILE``, or the demo model's
run of the embedded samples with ``--methods``): each record is a seed record with a new id,
every score multiplied by its own random factor (so ranks, colours and agreements differ),
and, unless ``--no-curves``, synthetic deletion-curve scores, so that every sort of the page
exists.  The page is driven over the Chrome DevTools protocol on a pipe (stdlib only):
first rows are timed by a MutationObserver installed before the page loads; scrolling is a
real scroll gesture (``Input.synthesizeScrollGesture``) with every animation frame's
interval recorded in the page.

    python benchmarks/bench_report.py                          # 10,000 samples
    python benchmarks/bench_report.py --seed run.jsonl --samples 10000 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from alti import __version__


def seed_records(args, workdir: Path) -> list[dict]:
    path = args.seed
    if path is None:
        from alti.cli import main

        path = str(workdir / "seed.jsonl")
        if main(["attribute", "--methods", args.methods, "--output", path]) != 0:
            raise SystemExit("could not write the seed run")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def synthetic_run(seed: list[dict], count: int, curves: bool, path: Path) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as handle:
        for k in range(count):
            record = dict(seed[k % len(seed)])
            record["id"] = str(k)
            record["scores"] = {
                m: (np.asarray(s) * rng.lognormal(0.0, 0.4, len(s))).tolist() for m, s in record["scores"].items()
            }
            if curves:
                record["faithfulness"] = {
                    "protocol": {"deletion": "remove", "steps": "bins", "envelope": True, "synthetic": True},
                    "p_full": record["prediction"]["probability"],
                    "methods": {
                        m: {
                            metric: {
                                "score": float(rng.random()),
                                "aupc": float(rng.random()),
                                "fractions": [0.0, 0.01, 0.05, 0.1, 0.2, 0.5],
                                "values": sorted(rng.random(6).tolist(), reverse=True),
                            }
                            for metric in ("comprehensiveness", "sufficiency")
                        }
                        for m in record["scores"]
                    },
                }
            handle.write(json.dumps(record) + "\n")


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, binary: str, profile: str, width: int, height: int) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def place_pipes() -> None:
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        command = [
            binary,
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--hide-scrollbars",
            "about:blank",
        ]
        command.insert(2, "--no-sandbox")  # as root or in a container; it only opens the page written here
        self.process = subprocess.Popen(
            command, preexec_fn=place_pipes, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _message(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, page: bool = False) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        while True:
            for k, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(k)
            self.events.append(self._message())

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, page=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)


FIRST_ROWS = """
new MutationObserver((changes, observer) => {
  if (!document.querySelector("article.sample")) return;
  observer.disconnect();
  window.__rowsInDom = performance.now();
  requestAnimationFrame(() => requestAnimationFrame(() => { window.__rowsPainted = performance.now(); }));
}).observe(document, { childList: true, subtree: true });
"""

FRAMES = """
window.__frames = [];
window.__recording = true;
(function tick(t) {
  if (window.__recording) { window.__frames.push(t); requestAnimationFrame(tick); }
})(performance.now());
"""

NEXT_FRAME = "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now()))))"


def frame_stats(frames: list[float]) -> dict[str, float]:
    gaps = np.diff(frames)
    return {
        "frames": len(gaps),
        "median_frame_ms": float(np.median(gaps)),
        "p95_frame_ms": float(np.percentile(gaps, 95)),
        "longest_frame_ms": float(gaps.max()),
    }


def scroll_through(browser: Chromium) -> dict[str, float]:
    """Real scroll gestures from the top to the end of the page (cards laid out as they come
    on screen make the page longer as it scrolls), with the page's frame intervals."""
    at_end = "scrollY + innerHeight >= document.documentElement.scrollHeight - 1"
    browser.evaluate(f"scrollTo(0, 0); {NEXT_FRAME}")
    browser.evaluate(FRAMES)
    start = time.perf_counter()
    for _ in range(10):
        distance = browser.evaluate("document.documentElement.scrollHeight - scrollY")
        gesture = {"x": 600, "y": 450, "yDistance": -distance, "speed": 4000, "gestureSourceType": "mouse"}
        browser.call("Input.synthesizeScrollGesture", gesture, page=True)
        if browser.evaluate(at_end):
            break
    seconds = time.perf_counter() - start
    frames = browser.evaluate("window.__recording = false; window.__frames")
    return {
        "scroll_s": seconds,
        "height_px": browser.evaluate("document.documentElement.scrollHeight"),
        "reached_end": browser.evaluate(at_end),
        **frame_stats(frames),
    }


def timed_action(browser: Chromium, action: str) -> float:
    """Milliseconds from an action in the page to the frame after it (rendering included)."""
    return browser.evaluate(
        f"(async () => {{ const t = performance.now(); {action}; return (await {NEXT_FRAME}) - t; }})()"
    )


def baseline_scroll(binary: str, profile: str, workdir: Path) -> dict[str, float]:
    """The same scroll over a page of plain paragraphs about as tall as a report's page: what
    this machine manages at the moment (on a shared machine, read the report's numbers
    against it)."""
    plain = workdir / "plain.html"
    lines = "".join(f"<p>line {i}: lorem ipsum dolor sit amet, consectetur adipiscing elit</p>" for i in range(500))
    plain.write_text(f"<!DOCTYPE html><html><body>{lines}</body></html>", encoding="utf-8")
    browser = Chromium(binary, profile, 1200, 900)
    try:
        browser.call("Page.enable", page=True)
        browser.call("Page.navigate", {"url": plain.as_uri()}, page=True)
        browser.wait_event("Page.loadEventFired")
        return scroll_through(browser)
    finally:
        browser.close()


def measure_page(page: Path, binary: str, profile: str, curves: bool) -> dict:
    browser = Chromium(binary, profile, 1200, 900)
    try:
        browser.call("Page.enable", page=True)
        browser.call("Performance.enable", page=True)
        browser.call("Page.addScriptToEvaluateOnNewDocument", {"source": FIRST_ROWS}, page=True)
        start = time.perf_counter()
        browser.call("Page.navigate", {"url": page.as_uri()}, page=True)
        browser.wait_event("Page.loadEventFired")
        load_s = time.perf_counter() - start
        browser.evaluate(NEXT_FRAME)
        out: dict = {
            "load_event_s": load_s,
            "rows_in_dom_ms": browser.evaluate("window.__rowsInDom"),
            "rows_painted_ms": browser.evaluate("window.__rowsPainted"),
            "dom_interactive_ms": browser.evaluate("performance.getEntriesByType('navigation')[0].domInteractive"),
        }
        out["first_page"] = scroll_through(browser)
        pages = browser.evaluate("Math.ceil(altiReport.listed().length / altiReport.state.size)")
        out["render_page_ms"] = browser.evaluate(
            "(() => { const t = performance.now(); altiReport.state.page = 2; altiReport.render();"
            " document.body.offsetHeight; return performance.now() - t; })()"
        )
        nexts = [
            timed_action(browser, "document.querySelector('.pager.bottom .next').click()")
            for _ in range(min(pages - 1, 40))
        ]
        out["next_page_ms"] = {"pages": len(nexts), "median": statistics.median(nexts), "max": max(nexts)}
        out["last_page_ms"] = timed_action(browser, "document.querySelector('.pager.top .last').click()")
        out["last_page"] = scroll_through(browser)
        out["page_size"] = browser.evaluate("altiReport.state.size")
        out["last_page_text"] = browser.evaluate("document.querySelector('.pager .where').textContent")
        out["last_card_is_last_sample"] = browser.evaluate(
            "(() => { const cards = document.querySelectorAll('article.sample'); const order = altiReport.listed();"
            " return Number(cards[cards.length - 1].dataset.i) === order[order.length - 1]; })()"
        )
        select = "(s => {{ s.value = '{}'; s.dispatchEvent(new Event('change')); }})(document.getElementById('sort'))"
        out["sort_ms"] = {
            key: timed_action(browser, select.format(key))
            for key in ("confidence", "disagreement", *(["comprehensiveness"] if curves else []), "length", "dataset")
        }
        out["search_ms"] = timed_action(
            browser, "altiReport.state.q = 'the'; altiReport.state.page = 1; altiReport.render()"
        )
        out["search_listed"] = browser.evaluate("altiReport.listed().length")
        metrics = {m["name"]: m["value"] for m in browser.call("Performance.getMetrics", page=True)["metrics"]}
        out["js_heap_mb"] = metrics.get("JSHeapUsedSize", float("nan")) / 1e6
        out["elements"] = browser.evaluate("document.getElementsByTagName('*').length")
        out["chromium"] = browser.call("Browser.getVersion")["product"]
        return out
    finally:
        browser.close()


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def print_summary(result: dict) -> None:
    b = result["browser"]
    pages = b["next_page_ms"]
    lines = [
        f"{result['samples']:,} samples x {result['methods']} methods "
        f"({result['tokens_per_sample']:.1f} tokens each), curves: {result['curves']}",
        f"run file {result['run_mb']:.1f} MB -> report {result['report_mb']:.1f} MB; "
        f"read {result['read_run_s']:.1f} s, report written in {result['write_report_s']:.1f} s",
        f"{b['chromium']}: first rows in the DOM {b['rows_in_dom_ms']:.0f} ms, "
        f"painted {b['rows_painted_ms']:.0f} ms, load event {b['load_event_s']:.2f} s",
    ]
    for name, s in (
        ("first page", b["first_page"]),
        ("last page", b["last_page"]),
        ("plain page", result["plain_page"]),
    ):
        lines.append(
            f"  scroll the {name} ({s['height_px']:,} px, {s['scroll_s']:.1f} s): "
            f"{s['frames']} frames, median {s['median_frame_ms']:.1f} ms, "
            f"p95 {s['p95_frame_ms']:.1f} ms, longest {s['longest_frame_ms']:.1f} ms; "
            f"reached the end: {s['reached_end']}"
        )
    lines += [
        f"  one page of {b['page_size']} samples drawn and laid out: {b['render_page_ms']:.0f} ms",
        f"  next page: median {pages['median']:.0f} ms, max {pages['max']:.0f} ms over {pages['pages']} pages; "
        f"last page {b['last_page_ms']:.0f} ms ({b['last_page_text']}; "
        f"its last card is the last sample: {b['last_card_is_last_sample']})",
        "  sort: " + ", ".join(f"{k} {v:.0f} ms" for k, v in b["sort_ms"].items()),
        f"  search 'the': {b['search_ms']:.0f} ms ({b['search_listed']:,} listed)",
        f"  JS heap {b['js_heap_mb']:.0f} MB, {b['elements']:,} elements in the page",
        f"machine: {result['machine']}; alti {result['alti']}",
    ]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="records in the synthetic run (default: 10000)")
    parser.add_argument("--seed", help="an 'alti attribute' file to replicate (default: the demo model's run)")
    parser.add_argument(
        "--methods",
        default="alti,attention,rollout,norm_rollout,globenc,grad_l2,gxi_l2,ig_l2",
        help="methods of the demo seed run",
    )
    parser.add_argument("--no-curves", action="store_true", help="leave out the synthetic deletion-curve scores")
    parser.add_argument("--keep", help="a folder to keep the run and the report in")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    binary = shutil.which("chromium")
    if binary is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install -y chromium)")

    from alti import report
    from alti.runs import read_run

    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(args.keep or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        run_path, page = workdir / "run.jsonl", workdir / "report.html"
        synthetic_run(seed_records(args, workdir), args.samples, not args.no_curves, run_path)
        start = time.perf_counter()
        run = read_run(str(run_path))
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        report.write(run, page)
        write_s = time.perf_counter() - start
        result = {
            "samples": len(run),
            "methods": len(run.methods),
            "tokens_per_sample": float(np.mean([len(r["tokens"]) for r in run.records])),
            "curves": run.has_curves,
            "run_mb": run_path.stat().st_size / 1e6,
            "report_mb": page.stat().st_size / 1e6,
            "read_run_s": read_s,
            "write_report_s": write_s,
            "browser": measure_page(page, binary, str(workdir / "chromium-profile"), run.has_curves),
            "plain_page": baseline_scroll(binary, str(workdir / "chromium-profile"), workdir),
            "machine": f"{cpu_name()}, {os.cpu_count()} cores",
            "alti": __version__,
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print_summary(result)


if __name__ == "__main__":
    main()
