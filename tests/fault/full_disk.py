"""A full disk: a training run checkpoints onto a 120 MB tmpfs, where the first checkpoint fits
and the second does not. The result must be a one-line error naming the file and the bytes it
needed; the previous checkpoint whole (the run resumes from a copy of it, elsewhere, and ends as
an uninterrupted run does); log.jsonl not cut mid-record. Then `prepare` onto a tmpfs too small for
its shards must leave the output directory as it was (an earlier run's shards, byte for byte).

    .venv/bin/python tests/fault/full_disk.py [--build-dir build]

Needs root (mount -t tmpfs); says so and exits 77 without it."""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import numpy as np  # noqa: E402

import torch_gpt2 as ref  # noqa: E402


def mount_tmpfs(where, size):
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def one_line_error(out, *words):
    err = out.stderr.decode(errors="replace")
    lines = err.strip("\n").splitlines()
    ok = out.returncode == 1 and len(lines) == 1 and lines[0].startswith("gpt2c") and all(w in err for w in words)
    return ok, err.strip()


def train(gpt2c, data, out, *extra):
    return subprocess.run([str(gpt2c), "train", "--model", "d2", "--max-seq-len", "64", "--data",
                           str(data / "train_*.bin"), "--out-dir", str(out), "--batch-size", "2", "--seq-len",
                           "32", "--max-steps", "10", "--ckpt-every", "2", "--val-every", "0", "--threads", "1",
                           *extra], capture_output=True, timeout=600)


def snapshot(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build")
    args = ap.parse_args()
    gpt2c = (ROOT / args.build_dir / "gpt2c").resolve()
    failures = []
    with tempfile.TemporaryDirectory(prefix="gpt2c-disk-") as tmp:
        tmp = Path(tmp)
        small = tmp / "small"
        if not mount_tmpfs(small, "120m"):
            print("skipped: mounting a tmpfs needs root")
            sys.exit(77)
        try:
            data = tmp / "data"
            data.mkdir()
            ref.write_shard(data / "train_000000.bin", np.arange(1000, 4000, dtype=np.uint16))
            got = train(gpt2c, data, small / "run")
            model = small / "run" / "model" / "model.safetensors"
            ok, err = one_line_error(got, "No space left on device", str(model), "the file needs "
                                     f"{model.stat().st_size} bytes")
            print(f"checkpoint onto a full 120 MB tmpfs: {err}")
            if not ok:
                failures.append("the full disk's error: " + err)
            lines = (small / "run" / "log.jsonl").read_text().split("\n")
            if lines[-1] != "" or not all(json.loads(l) for l in lines[:-1]):
                failures.append("log.jsonl was cut mid-record")
            steps = [json.loads(l)["step"] for l in lines[:-1]]
            # the state that stayed is the first checkpoint's: resumed elsewhere, it ends as a whole run
            copy = tmp / "copy"
            shutil.copytree(small / "run", copy)
            resumed = train(gpt2c, data, copy, "--resume")
            whole = train(gpt2c, data, tmp / "whole")
            same = resumed.returncode == 0 and whole.returncode == 0 and \
                (copy / "model" / "model.safetensors").read_bytes() == \
                (tmp / "whole" / "model" / "model.safetensors").read_bytes()
            print(f"  log.jsonl whole ({len(steps)} records, steps {steps[0]}..{steps[-1]}); the checkpoint "
                  f"left resumes elsewhere to the uninterrupted run's model: {'yes' if same else 'NO'}")
            if not same:
                failures.append("the checkpoint left did not resume to the same end: " +
                                resumed.stderr.decode(errors="replace")[-500:])
        finally:
            subprocess.run(["umount", str(small)])
        tiny = tmp / "tiny"
        mount_tmpfs(tiny, "256k")
        try:
            out = tiny / "shards"
            text = tmp / "small.txt"
            text.write_text("A few words.\n\nAnd a second document.\n")
            first = subprocess.run([str(gpt2c), "prepare", "--input", str(text), "--split-blank-lines",
                                    "--out-dir", str(out), "--val-tokens", "4", "--quiet"], capture_output=True)
            before = snapshot(out)
            got = subprocess.run([str(gpt2c), "prepare", "--input", str(ROOT / "data/tinyshakespeare/input.txt"),
                                  "--split-blank-lines", "--out-dir", str(out), "--quiet"], capture_output=True)
            ok, err = one_line_error(got, "No space left on device")
            after = snapshot(out)
            print(f"prepare onto a full 256 KB tmpfs: {err}; the directory as it was: "
                  f"{'yes' if after == before else 'NO'} ({len(before)} files)")
            if first.returncode != 0 or not ok or after != before:
                failures.append("prepare on a full disk: " + err)
        finally:
            subprocess.run(["umount", str(tiny)])
    for f in failures:
        print("FAILED:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
