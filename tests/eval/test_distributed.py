"""`alti attribute` and `alti evaluate` under `torchrun` (2 CPU processes, gloo).

The references are single-process runs with one thread, as each torchrun
process has (CPU matrix products round differently with other thread counts).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from alti import distributed
from alti.cli import main
from alti.runfile import plan

BIN = Path(sys.executable).parent
TORCHRUN, ALTI = BIN / "torchrun", BIN / "alti"
pytestmark = [
    pytest.mark.skipif(not (TORCHRUN.exists() and ALTI.exists()), reason="torchrun or alti not installed"),
    pytest.mark.subprocess,
    pytest.mark.slow,
]

DEMO = ["--model", "demo", "--device", "cpu", "--dataset", "samples", "--methods", "alti,rollout,grad_l2"]
ATTRIBUTE = ["attribute", *DEMO, "--limit", "8", "--batch-size", "2"]  # batches 0, 2 on rank 0; 1, 3 on rank 1
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args, timeout: float = 120, program=(str(ALTI),), popen: bool = False):
    command = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "--no-python", *program, *args]
    if popen:
        return subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process file of ATTRIBUTE, one thread."""
    path = tmp_path_factory.mktemp("reference") / "one.jsonl"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*ATTRIBUTE, "--output", str(path)]) == 0
    finally:
        torch.set_num_threads(threads)
    return path.read_bytes()


def test_launch_is_read_from_the_environment():
    assert not distributed.launched({})
    assert not distributed.launched({"WORLD_SIZE": "1", "RANK": "0"})
    assert distributed.launched({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})


def test_each_gpu_rank_takes_the_gpu_of_its_local_rank(monkeypatch):
    """No GPU here: torch.cuda is stood in for, so what a rank asks of it can be checked."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert distributed.World(rank=3, size=4, local_rank=1, cuda=True).device("auto") == "cuda:1"
    assert chosen == [1]
    with pytest.raises(distributed.InputError, match="LOCAL_RANK 2 has no GPU of its own.*--device cpu"):
        distributed.World(rank=2, size=4, local_rank=2, cuda=True).device("cuda")
    assert distributed.World(rank=1, size=2, local_rank=1).device("cpu") == "cpu"
    assert chosen == [1]


@pytest.mark.parametrize(
    "device, gpus, backend",
    [
        ("auto", True, "cpu:gloo,cuda:nccl"),
        ("cuda", True, "cpu:gloo,cuda:nccl"),
        ("cpu", True, "gloo"),
        ("auto", False, "gloo"),
    ],
)
def test_gpu_ranks_join_with_nccl_beside_gloo(monkeypatch, device, gpus, backend):
    """GPUs get NCCL for CUDA tensors and gloo for the CPU tensors the results travel in."""
    import torch.distributed as dist

    joined, left = [], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, timeout: joined.append(backend))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: left.append(True))
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    with distributed.world(device) as world:
        assert (world.rank, world.size, world.local_rank, world.cuda) == (1, 2, 1, backend != "gloo")
    assert joined == [backend] and left == [True]


def test_a_plain_run_never_joins_a_process_group(tmp_path, monkeypatch, one_thread, reference):
    def refuse(*args, **kwargs):
        raise AssertionError("a plain run initialised torch.distributed")

    monkeypatch.setattr(torch.distributed, "init_process_group", refuse)
    monkeypatch.setenv("WORLD_SIZE", "1")
    output = tmp_path / "plain.jsonl"
    assert main([*ATTRIBUTE, "--output", str(output)]) == 0
    assert output.read_bytes() == reference
    assert not torch.distributed.is_initialized()


def test_two_processes_write_the_single_process_file(tmp_path, reference):
    output = tmp_path / "two.jsonl"
    run = torchrun(*ATTRIBUTE, "--output", str(output))
    assert run.returncode == 0, run.stderr
    assert output.read_bytes() == reference
    assert [line for line in run.stderr.splitlines() if line.startswith("alti:")] == [
        f"alti: wrote 8 records to {output} (0 were already there)"
    ]


def test_only_unfinished_batches_are_dealt_out():
    samples = [SimpleNamespace(id=f"s{i}") for i in range(7)]
    records = [{"id": f"s{i}"} for i in (0, 1, 2, 4)]  # batch 1 half written
    assert plan(samples, records, 2) == {"batches": [1, 2, 3], "skip": ["s2", "s4"]}
    assert plan(samples, [], 3) == {"batches": [0, 1, 2], "skip": []}
    assert plan(samples, [{"id": f"s{i}"} for i in range(7)], 2) == {"batches": [], "skip": []}


def workers(launcher: int) -> dict[str, int]:
    """The pids of a torchrun's worker processes, by RANK."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == launcher:
                environ = dict(v.split("=", 1) for v in (entry / "environ").read_text().split("\0") if "=" in v)
                found[environ["RANK"]] = int(entry.name)
        except (OSError, KeyError, IndexError, ValueError):
            continue
    return found


def test_a_killed_rank_leaves_a_prefix_that_resumes(tmp_path, reference):
    output = tmp_path / "killed.jsonl"
    job = torchrun(*ATTRIBUTE, "--output", str(output), popen=True)
    try:
        deadline = time.monotonic() + 120
        while job.poll() is None and time.monotonic() < deadline:
            if output.exists() and output.read_bytes().count(b"\n") >= 1:  # rank 0 writes round 1
                os.kill(workers(job.pid)["1"], signal.SIGKILL)  # while rank 1 explains batch 3
                break
            time.sleep(0.02)
        job.communicate(timeout=90)
        assert job.returncode != 0
    finally:
        if job.poll() is None:
            job.kill()
    left = output.read_bytes()
    complete = left[: left.rfind(b"\n") + 1]
    assert 1 <= complete.count(b"\n") < 8 and reference.startswith(complete)
    run = torchrun(*ATTRIBUTE, "--output", str(output))
    assert run.returncode == 0, run.stderr
    assert output.read_bytes() == reference


def test_two_processes_evaluate_as_one(capsys, one_thread):
    args = ["evaluate", *DEMO, "--limit", "4", "--batch-size", "2", "--format", "json", "--agreement"]
    assert main(args) == 0
    single = json.loads(capsys.readouterr().out)
    run = torchrun(*args)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == single
    assert single["samples"] == 4 and set(single) == {"samples", "protocol", "methods", "agreement"}


def test_bad_input_is_one_line_from_all_ranks(tmp_path):
    run = torchrun(*ATTRIBUTE[:-4], "--methods", "alti,nosuch", "--output", str(tmp_path / "x.jsonl"), timeout=60)
    assert run.returncode != 0
    said = [line for line in run.stderr.splitlines() if line.startswith("alti:")]
    assert len(said) == 1 and said[0].startswith("alti: error: unknown method 'nosuch'")
    assert not (tmp_path / "x.jsonl").exists()


SCRIPT = textwrap.dedent(
    """
    import os
    from alti.distributed import world
    from alti.errors import AltiError, InputError

    rank = os.environ["RANK"]

    def work(b):
        if b == 3:
            raise InputError(f"sample {b} is bad")
        return [f"batch {b} on rank {rank}"]

    def load():
        if rank == "1":
            raise InputError("no model on this node")

    with world("cpu") as ranks:
        try:
            for result, local in ranks.results(list(range(6)), work):
                print(result[0], local, flush=True)
        except AltiError as exc:
            print(f"error: {exc}", flush=True)
        except SystemExit as exc:
            print(f"exit {exc.code}", flush=True)
        try:
            ranks.agree(load)
        except AltiError as exc:
            print(f"error: {exc}", flush=True)
    """
)


def test_an_error_on_one_rank_stops_every_rank_with_one_message(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    logs = tmp_path / "logs"
    run = torchrun(program=("--log-dir", str(logs), "--redirects", "3", sys.executable, str(script)), timeout=60)
    assert run.returncode != 0  # rank 1 leaves with status 2 when loading fails
    outputs = {p.parent.name: p.read_text().splitlines() for p in logs.rglob("stdout.log")}
    errors = {p.parent.name: p.read_text() for p in logs.rglob("stderr.log")}
    assert outputs["0"] == [
        "batch 0 on rank 0 True",
        "batch 1 on rank 1 False",
        "batch 2 on rank 0 True",  # then batch 3 failed
        "error: sample 3 is bad",
        "error: rank 1: no model on this node",
    ]
    assert outputs["1"] == ["exit 2"] and errors["1"] == ""
    assert "exitcode  : 2" in run.stderr
