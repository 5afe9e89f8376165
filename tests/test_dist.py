"""Data-parallel training over MPI ranks (`mpirun -np 2 gpt2c train ...`), against one process.

The premise: 2 ranks with accumulation k read, per optimizer step, the same batches as 1 process
with accumulation 2k (rank r takes every second batch of the one-process sequence, across shard
ends too), and their gradients are summed before the update; so losses, norms and weights agree
to float tolerance (only the order of the sums differs). Both sides run with one thread, on
shards small enough that the runs cross shard ends (where DataLoaderLite's ranks would drift).
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import GPT2C, ROOT, SANITIZER_MARKS, assert_ok, assert_one_line_error, run_gpt2c

MPIRUN = shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="mpirun not installed (scripts/install-deps.sh)")

# Open MPI frees little of its own memory at exit; that is not gpt2c's to fix. Everything else of
# AddressSanitizer stays on.
MPI_ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")

LOSS_ATOL = 1e-5
NORM_RTOL = 1e-5
WEIGHT_ATOL = 2e-5
STEPS = 8
# B*T = 64 tokens a batch, 256 a step: with 2 ranks 2 micro-steps each, with 1 process 4
COMMON = ["--model", "d2", "--seed", "7", "--batch-size", "2", "--seq-len", "32",
          "--total-batch-size", "256", "--max-steps", str(STEPS), "--warmup-steps", "2",
          "--lr", "1e-3", "--val-every", "4", "--val-steps", "2", "--ckpt-every", "3",
          "--threads", "1"]


def mpirun(np_, *args, timeout=300):
    cmd = [MPIRUN, "--oversubscribe", "--allow-run-as-root", "-np", str(np_), str(GPT2C), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, check=False, timeout=timeout, env=MPI_ENV)


def mpmd(*apps, timeout=600):
    """One rank per argument list: mpirun -np 1 gpt2c A : -np 1 gpt2c B ..."""
    cmd = [MPIRUN, "--oversubscribe", "--allow-run-as-root"]
    for i, app in enumerate(apps):
        cmd += ([":"] if i else []) + ["-np", "1", str(GPT2C), *map(str, app)]
    return subprocess.run(cmd, capture_output=True, check=False, timeout=timeout, env=MPI_ENV)


def read_log(out_dir):
    return [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines() if line]


def weights(out_dir):
    from safetensors.torch import load_file
    return load_file(str(Path(out_dir) / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Shards of 1000 tokens (15 batches of 64 each, an odd count: the ranks cross shard ends at
    different micro-steps) and a val shard."""
    d = tmp_path_factory.mktemp("shards")
    run_gpt2c("prepare", "--input", ROOT / "data/tinyshakespeare/input.txt", "--split-blank-lines",
              "--out-dir", d, "--val-tokens", "4096", "--shard-tokens", "1000", "--quiet")
    return str(d / "train_*.bin"), str(d / "val_*.bin")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("one") / "run"
    run_gpt2c("train", *COMMON, "--data", data[0], "--val-data", data[1], "--out-dir", out)
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, data):
    """two_ranks(zero, precision): the uninterrupted 2-rank run (its directory and stdout), each
    made once: the comparisons with one process and the resume tests start from the same runs."""
    runs = {}

    def get(zero, precision):
        if (zero, precision) not in runs:
            out = tmp_path_factory.mktemp("two") / "run"
            got = assert_ok(mpirun(2, "train", *COMMON, "--data", data[0], "--val-data", data[1], "--zero", zero,
                                   "--precision", precision, "--out-dir", out))
            runs[zero, precision] = out, got.stdout.decode()
        return runs[zero, precision]
    return get


def assert_same_run(got_dir, want_dir):
    got, want = read_log(got_dir), read_log(want_dir)
    steps = [r for r in got if "loss" in r]
    assert [r["step"] for r in steps] == list(range(STEPS))
    assert [r.get("step") for r in got] == [r.get("step") for r in want]
    for g, w in zip(got, want):
        if "loss" in w:
            assert abs(g["loss"] - w["loss"]) <= LOSS_ATOL, (g, w)
            assert g["lr"] == w["lr"]
            assert abs(g["norm"] - w["norm"]) <= NORM_RTOL * w["norm"], (g, w)
        else:
            assert abs(g["val_loss"] - w["val_loss"]) <= LOSS_ATOL, (g, w)
    a, b = weights(got_dir), weights(want_dir)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= WEIGHT_ATOL, worst


@pytest.mark.parametrize("zero", [0, 1])
def test_two_ranks_equal_one_process_with_twice_the_accumulation(two_ranks, one_process, zero):
    """Both sides fp32, the same batches per step; only the order of the sums differs."""
    run, text = two_ranks(zero, "fp32")
    assert "data parallel: 2 ranks over MPI, each 2 micro-batch(es) per step" in text
    assert text.count("step     0/8") == 1  # only rank 0 prints
    assert_same_run(run, one_process)


@pytest.mark.parametrize("zero, precision", [(0, "fp32"), (1, "fp32"), (1, "bf16")])
def test_resume_under_two_ranks_equals_uninterrupted(tmp_path, data, two_ranks, zero, precision):
    """With bf16 and ZeRO-1 each rank also keeps the bf16 copy of the weights it did not update
    itself up to date."""
    a, b = two_ranks(zero, precision)[0], tmp_path / "b"
    args = [*COMMON, "--data", data[0], "--val-data", data[1], "--zero", zero, "--precision", precision]
    assert_ok(mpirun(2, "train", *args, "--out-dir", b, "--stop-after", "5"))
    assert_ok(mpirun(2, "train", *args, "--out-dir", b, "--resume"))
    strip = lambda log: [{k: v for k, v in r.items() if k not in ("dt_ms", "tok_s")} for r in log]
    assert strip(read_log(b)) == strip(read_log(a))
    assert (b / "model/model.safetensors").read_bytes() == (a / "model/model.safetensors").read_bytes()
    assert (b / "state/train_state.safetensors").read_bytes() == (a / "state/train_state.safetensors").read_bytes()


def test_two_ranks_bf16_zero1_follow_one_process_bf16(tmp_path, data, two_ranks):
    """bf16 rounds the matmul inputs; a weight one ulp apart on the two sides may round to
    neighbouring bf16 values, so the tolerance is bf16's, not fp32's."""
    one, two = tmp_path / "one", two_ranks(1, "bf16")[0]
    args = [*COMMON, "--data", data[0], "--val-data", data[1], "--precision", "bf16"]
    run_gpt2c("train", *args, "--out-dir", one)
    got, want = read_log(two), read_log(one)
    assert [r.get("step") for r in got] == [r.get("step") for r in want]
    for g, w in zip(got, want):
        key = "loss" if "loss" in w else "val_loss"
        assert abs(g[key] - w[key]) <= 1e-3, (g, w)  # measured: 4.7e-5


def test_resume_with_another_number_of_ranks(tmp_path, data, one_process):
    """The state holds whole moments and the one-process data position: 2 ranks (ZeRO-1) may stop
    and 1 process go on, and it stays the same run."""
    out = tmp_path / "run"
    args = [*COMMON, "--data", data[0], "--val-data", data[1], "--out-dir", out]
    assert_ok(mpirun(2, "train", *args, "--zero", "1", "--stop-after", "3"))
    run_gpt2c("train", *args, "--resume")
    assert_same_run(out, one_process)


def test_a_rank_failing_on_a_bad_shard_ends_the_job(tmp_path, data):
    """Rank 1 is given a truncated copy of the shards (MPMD launch: paths may differ per machine,
    the data may not); the job must end, non-zero, not hang (a hang is mpmd's timeout)."""
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in sorted(Path(data[0]).parent.glob("train_*.bin")):
        shutil.copy(f, bad / f.name)
    last = sorted(bad.glob("train_*.bin"))[-1]
    last.write_bytes(last.read_bytes()[:-7])
    args = [*COMMON, "--out-dir", tmp_path / "run"]
    out = mpmd(["train", *args, "--data", data[0]], ["train", *args, "--data", str(bad / "train_*.bin")])
    err = out.stderr.decode(errors="replace")
    assert out.returncode != 0, err
    assert "gpt2c: error: rank 1 of 2:" in err and "train_" in err, err
    assert not any(mark in err for mark in SANITIZER_MARKS), err


def test_ranks_with_different_flags_are_stopped_at_the_start(tmp_path, data):
    args = [*COMMON, "--data", data[0], "--out-dir", tmp_path / "run"]
    out = mpmd(["train", *args], ["train", *args, "--lr", "2e-3"])
    err = out.stderr.decode(errors="replace")
    assert out.returncode != 0, err
    assert "rank 1's training options differ from rank 0's" in err, err
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_total_batch_must_divide_over_the_ranks(tmp_path, data):
    out = mpirun(2, "train", *COMMON, "--data", data[0], "--out-dir", tmp_path / "run",
                 "--total-batch-size", "192", timeout=120)
    err = out.stderr.decode(errors="replace")
    assert out.returncode != 0
    assert "is not a multiple of batch size x sequence length x processes (2 x 32 x 2 = 128)" in err, err


def test_bad_zero_flag_is_one_line_error(tmp_path, data):
    assert_one_line_error(run_gpt2c("train", *COMMON, "--data", data[0], "--out-dir", tmp_path / "r",
                                    "--zero", "2", check=False))
