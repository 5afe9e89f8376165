"""Data-parallel training on GPUs: `mpirun -np 2 gpt2c train --device cuda` runs the NCCL
communicator (src/dist/comm_nccl.c), here on the emulated build's NCCL stand-in over MPI, each
rank on its own emulated GPU (GPT2C_CUDA_EMULATE_DEVICES=2: the GPU of its local rank).

Two ranks with one micro-batch each read, per step, the batches one process reads with two
(tests/test_dist.py's premise), so the NCCL run's losses and norms follow both the 2-rank CPU run
over MPI and the one-process CPU run, to the emulated GPU's fp32 tolerance
(tests/test_cuda_emulated.py's; TF32 off). ZeRO-1 goes through NCCL's reduce-scatter and
all-gather on the padded flat buffers, and its resume (moments scattered and gathered by NCCL's
sends and receives) equals the uninterrupted run byte for byte. d2, B=2, T=64, 3 steps. And the
stand-in's own test (tests/test_nccl_standin.cpp) on 2 ranks."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import GPT2C, ROOT, assert_ok, run_gpt2c

MPIRUN = shutil.which("mpirun")
INFO = json.loads(run_gpt2c("info", "--json").stdout)
pytestmark = [
    pytest.mark.skipif(MPIRUN is None, reason="mpirun not installed (scripts/install-deps.sh)"),
    pytest.mark.skipif(not INFO.get("cuda_emulated") or not INFO.get("nccl"),
                       reason="needs the emulated CUDA backend and the NCCL stand-in (built with MPI)"),
]

# Open MPI frees little of its own memory at exit (test_dist.py); fp32 products in fp32 on the
# emulated GPU, as test_cuda_emulated.py's CPU comparisons run them; two emulated GPUs.
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", GPT2C_CUDA_TF32="0", GPT2C_CUDA_EMULATE_DEVICES="2")
TOLERANCE = 1e-5  # test_cuda_emulated.py's fp32 tolerance (relative; 10x for the norm)
STEPS = 3
# 128 tokens a micro-batch, 256 a step: 2 ranks x 1 micro-batch, or 1 process x 2
COMMON = ["--model", "d2", "--seed", "7", "--batch-size", "2", "--seq-len", "64",
          "--total-batch-size", "256", "--max-steps", str(STEPS), "--warmup-steps", "2",
          "--lr", "1e-3", "--val-every", "4", "--val-steps", "1", "--ckpt-every", "4",
          "--threads", "1", "--precision", "fp32"]


def mpirun(*args, timeout=300):
    cmd = [MPIRUN, "--oversubscribe", "--allow-run-as-root", "-np", "2", str(GPT2C), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, check=False, timeout=timeout, env=ENV)


def read_log(out_dir):
    return [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines() if line]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    run_gpt2c("prepare", "--input", ROOT / "data/tinyshakespeare/input.txt", "--split-blank-lines",
              "--out-dir", d, "--val-tokens", "4096", "--shard-tokens", "1000", "--quiet")
    return ["--data", str(d / "train_*.bin"), "--val-data", str(d / "val_*.bin")]


@pytest.fixture(scope="module")
def cpu_runs(tmp_path_factory, data):
    """The references: one CPU process, and two CPU ranks over MPI."""
    d = tmp_path_factory.mktemp("cpu")
    run_gpt2c("train", *COMMON, *data, "--device", "cpu", "--out-dir", d / "one", env=ENV)
    out = assert_ok(mpirun("train", *COMMON, *data, "--device", "cpu", "--out-dir", d / "mpi"))
    assert "2 ranks over MPI" in out.stdout.decode()
    return d / "one", d / "mpi"


@pytest.fixture(scope="module")
def nccl_zero1(tmp_path_factory, data):
    out_dir = tmp_path_factory.mktemp("nccl") / "zero1"
    out = assert_ok(mpirun("train", *COMMON, *data, "--device", "cuda", "--zero", "1", "--out-dir", out_dir))
    return out_dir, out.stdout.decode()


def test_the_nccl_standin_keeps_nccls_semantics():
    """tests/test_nccl_standin.cpp on 2 ranks: each collective's result, stream order, a group's
    sends and receives, and the refusals of bad arguments."""
    exe = GPT2C.parent / "tests" / "test_nccl_standin"
    cmd = [MPIRUN, "--oversubscribe", "--allow-run-as-root", "-np", "2", str(exe)]
    out = assert_ok(subprocess.run(cmd, capture_output=True, check=False, timeout=120, env=ENV))
    assert out.stderr.decode().count(" 0 failed") == 2, out.stderr.decode()


def follows(got_dir, want_dir):
    got, want = read_log(got_dir), read_log(want_dir)
    assert [r.get("step") for r in got] == [r.get("step") for r in want]
    assert [r["step"] for r in got if "loss" in r] == list(range(STEPS))
    for g, w in zip(got, want):
        if "loss" in w:
            assert g["loss"] == pytest.approx(w["loss"], rel=TOLERANCE), (g, w)
            assert g["norm"] == pytest.approx(w["norm"], rel=10 * TOLERANCE), (g, w)
            assert g["lr"] == w["lr"]
        else:
            assert g["val_loss"] == pytest.approx(w["val_loss"], rel=TOLERANCE), (g, w)


@pytest.mark.parametrize("zero", [0, 1])
def test_two_gpu_ranks_over_nccl_follow_mpi_and_one_process(tmp_path, data, cpu_runs, nccl_zero1, zero):
    if zero:
        out_dir, text = nccl_zero1
    else:
        out_dir = tmp_path / "zero0"
        text = assert_ok(mpirun("train", *COMMON, *data, "--device", "cuda", "--out-dir", out_dir)).stdout.decode()
    assert "data parallel: 2 ranks over NCCL (the emulated build's stand-in, over MPI)" in text
    assert ("ZeRO-1" in text) == bool(zero)
    one, mpi = cpu_runs
    follows(out_dir, mpi)
    follows(out_dir, one)


def test_zero1_resume_over_nccl_equals_uninterrupted(tmp_path, data, nccl_zero1):
    whole, _ = nccl_zero1
    b = tmp_path / "b"
    args = [*COMMON, *data, "--device", "cuda", "--zero", "1", "--out-dir", b]
    assert_ok(mpirun("train", *args, "--stop-after", "2"))
    assert_ok(mpirun("train", *args, "--resume"))
    strip = lambda log: [{k: v for k, v in r.items() if k not in ("dt_ms", "tok_s")} for r in log]
    assert strip(read_log(b)) == strip(read_log(whole))
    for f in ("model/model.safetensors", "state/train_state.safetensors"):
        assert (b / f).read_bytes() == (whole / f).read_bytes(), f
