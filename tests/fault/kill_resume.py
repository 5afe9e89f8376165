"""kill -9 at any moment: a small training run (d2, 200 steps, a checkpoint every 5 steps) is
killed with SIGKILL at random moments, 50 times, about half of them while a checkpoint file is being
written (a *.tmp file exists), and resumed each time. Every checkpoint left after a kill must load
(the model directory through `gpt2c eval`, the state through the resume), and the end must equal an
uninterrupted run's: model.safetensors and train_state.safetensors byte for byte, log.jsonl record
for record but for its two timings (dt_ms, tok_s). Then under 2 MPI ranks, with and without
ZeRO-1: one rank is killed, the job must end (not hang), and it resumes to the same end.

    .venv/bin/python tests/fault/kill_resume.py [--build-dir build] [--kills 50] [--seed 1]

Prints the figures (kills, of them during a checkpoint write, resumes, differences, time) and
exits non-zero on any difference."""
import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import numpy as np  # noqa: E402

import torch_gpt2 as ref  # noqa: E402

STEPS = 200


def train_cmd(gpt2c, data, out, resume, zero=None):
    cmd = [str(gpt2c), "train", "--model", "d2", "--max-seq-len", "64", "--data", str(data / "train_*.bin"),
           "--val-data", str(data / "val_*.bin"), "--out-dir", str(out), "--batch-size", "2",
           "--seq-len", "32", "--max-steps", str(STEPS), "--warmup-steps", "10", "--val-every", "50",
           "--val-steps", "1", "--ckpt-every", "5", "--threads", "1", "--seed", "5"]
    if zero is not None:
        cmd += ["--zero", str(zero), "--total-batch-size", "128"]
    return cmd + (["--resume"] if resume else [])


def records(out):
    """log.jsonl's records without their timings."""
    lines = (out / "log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(l).items() if k not in ("dt_ms", "tok_s")} for l in lines]


def same_end(a, b):
    """The differences between two finished runs (an empty list: none)."""
    diffs = []
    for rel in ("model/model.safetensors", "model/config.json", "state/train_state.safetensors"):
        if (a / rel).read_bytes() != (b / rel).read_bytes():
            diffs.append(rel)
    if records(a) != records(b):
        diffs.append("log.jsonl")
    return diffs


def checkpoint_loads(gpt2c, data, out):
    """The model directory a kill left is whole (gpt2c eval reads every tensor)."""
    if not (out / "model" / "model.safetensors").exists():
        return True  # killed before the first checkpoint
    got = subprocess.run([str(gpt2c), "eval", "--model", str(out / "model"), "--data",
                          str(data / "val_*.bin"), "--batch-size", "1", "--seq-len", "16", "--steps", "1",
                          "--threads", "1"], capture_output=True, timeout=120)
    return got.returncode == 0


def writing_checkpoint(out):
    return bool(glob.glob(str(out / "model" / "*.tmp")) + glob.glob(str(out / "state" / "*.tmp")))


def kill_and_resume(gpt2c, data, out, kills, rng, mpirun=None, zero=None):
    """Run to the end with `kills` SIGKILLs on the way. Returns (kills, during writes, resumes,
    broken checkpoints)."""
    during, resumes, broken, done = 0, 0, 0, 0
    while True:
        resume = (out / "state" / "train_state.safetensors").exists()
        resumes += resume
        cmd = train_cmd(gpt2c, data, out, resume, zero)
        if mpirun:
            cmd = [mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "2"] + cmd
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"), start_new_session=True)
        if done >= kills:
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                sys.exit(f"the last run failed: {err.decode(errors='replace')[-2000:]}")
            return done, during, resumes, broken
        # half the kills wait for a checkpoint file being written, the rest come at a random time
        at_write = rng.random() < 0.5
        deadline = time.monotonic() + rng.uniform(0.05, 1.0)
        while proc.poll() is None:
            if at_write and writing_checkpoint(out) and rng.random() < 0.3:
                during += 1
                break
            if not at_write and time.monotonic() >= deadline:
                break
            if at_write and time.monotonic() >= deadline + 5:
                break  # no write seen in time: kill anyway
            time.sleep(0.0005)
        if proc.poll() is not None:  # it finished before the kill: start again from scratch
            if proc.returncode != 0:
                sys.exit(f"a run failed: {proc.stderr.read().decode(errors='replace')[-2000:]}")
            shutil.rmtree(out)
            continue
        if mpirun:  # one rank: the job must end by itself, not hang
            ranks = subprocess.run(["pgrep", "-s", str(proc.pid), "-f", f"^{gpt2c} train"],
                                   capture_output=True, text=True).stdout.split()
            os.kill(int(rng.choice(ranks)), signal.SIGKILL) if ranks else None
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                sys.exit("the job hung after a rank was killed")
        else:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        done += 1
        broken += not checkpoint_loads(gpt2c, data, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--mpi-kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    gpt2c = (ROOT / args.build_dir / "gpt2c").resolve()
    rng = random.Random(args.seed)
    failed = False
    with tempfile.TemporaryDirectory(prefix="gpt2c-kill-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        data.mkdir()
        ref.write_shard(data / "train_000000.bin", np.arange(1000, 1000 + 40000, dtype=np.uint16) % 50257)
        ref.write_shard(data / "val_000000.bin", np.arange(7000, 7000 + 600, dtype=np.uint16))
        whole = tmp / "whole"
        t0 = time.monotonic()
        subprocess.run(train_cmd(gpt2c, data, whole, False), check=True, capture_output=True, timeout=900)
        t_whole = time.monotonic() - t0
        t0 = time.monotonic()
        killed = tmp / "killed"
        kills, during, resumes, broken = kill_and_resume(gpt2c, data, killed, args.kills, rng)
        diffs = same_end(whole, killed)
        print(f"one process: {kills} kills ({during} while a checkpoint file was being written), "
              f"{resumes} resumes, {broken} checkpoints that did not load, differences from the "
              f"uninterrupted run: {len(diffs)} {diffs or ''}; {time.monotonic() - t0:.0f} s "
              f"(the run alone: {t_whole:.0f} s)", flush=True)
        failed |= bool(diffs) or broken > 0
        mpirun = shutil.which("mpirun")
        for zero in (0, 1) if mpirun else ():
            ref_dir = tmp / f"mpi-whole-{zero}"
            subprocess.run(["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", "2"] +
                           train_cmd(gpt2c, data, ref_dir, False, zero), check=True, capture_output=True,
                           timeout=900, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
            t0 = time.monotonic()
            out = tmp / f"mpi-killed-{zero}"
            kills, during, resumes, broken = kill_and_resume(gpt2c, data, out, args.mpi_kills, rng, mpirun, zero)
            diffs = same_end(ref_dir, out)
            print(f"2 ranks, --zero {zero}: {kills} ranks killed ({during} during a checkpoint "
                  f"write), every job ended without hanging, {resumes} resumes, {broken} broken "
                  f"checkpoints, differences: {len(diffs)} {diffs or ''}; {time.monotonic() - t0:.0f} s",
                  flush=True)
            failed |= bool(diffs) or broken > 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
