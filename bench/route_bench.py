"""gpt2c against itself: the cost of the emulated bf16 route and of --profile.

  bf16 (emulated) vs fp32 under GPT2C_CPU_ISA (default avx2): d12 at B=4 T=64 and B=8 T=256;
  --profile on vs off (d12 B=4 T=64 fp32) at the machine's best level and under the cap.
Each pair runs alternately, a fresh `gpt2c train` process per run, --rounds times; the first step
of every run is dropped and the medians are over the rest (dt_ms of log.jsonl).

Run from the repository root:  .venv/bin/python bench/route_bench.py [--rounds 3] [--cpu-isa avx2]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_common import find_gpt2c

ROOT = Path(__file__).resolve().parent.parent


def train(gpt2c, data, tmp, isa, precision, B, T, steps, profile=False):
    out = Path(tmp) / "run"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    if isa:
        env["GPT2C_CPU_ISA"] = isa
    cmd = [str(gpt2c), "train", "--model", "d12", "--data", str(data), "--out-dir", str(out),
           "--batch-size", str(B), "--seq-len", str(T), "--max-steps", str(steps),
           "--warmup-steps", "1", "--val-every", "0", "--ckpt-every", "0", "--threads", "2",
           "--precision", precision] + (["--profile"] if profile else [])
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    route = [line for line in p.stdout.splitlines() if line.startswith("plan:")][0].split("; ")[-1]
    dts = [json.loads(line)["dt_ms"] for line in (out / "log.jsonl").read_text().splitlines()
           if "dt_ms" in line]
    shutil.rmtree(out, ignore_errors=True)
    return dts[1:], route


def prepare_data(gpt2c, tmp):
    """Tiny Shakespeare as shards under tmp (their glob), and what `gpt2c info` says."""
    subprocess.run([str(gpt2c), "prepare", "--input", str(ROOT / "data/tinyshakespeare/input.txt"),
                    "--split-blank-lines", "--out-dir", str(Path(tmp) / "data"), "--quiet"], check=True)
    print(subprocess.run([str(gpt2c), "info"], capture_output=True, text=True).stdout)
    return Path(tmp) / "data" / "train_*.bin"


def pair(label, runs_a, runs_b, name_a, name_b):
    a, b = statistics.median(runs_a), statistics.median(runs_b)
    print(f"{label}: {name_a} {a:.0f} ms, {name_b} {b:.0f} ms per step ({100 * (b / a - 1):+.1f}%); "
          f"steps {name_a} {[round(x) for x in runs_a]}, {name_b} {[round(x) for x in runs_b]}",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu-isa", default="avx2", help="the level of the emulated route (default avx2)")
    args = ap.parse_args()
    _, gpt2c = find_gpt2c(args.build_dir, ROOT)
    with tempfile.TemporaryDirectory(prefix="gpt2c-route-bench-") as tmp:
        data = prepare_data(gpt2c, tmp)
        for B, T, steps in ((4, 64, 8), (8, 256, 4)):
            runs = {"fp32": [], "bf16": []}
            for _ in range(args.rounds):
                for precision in runs:
                    dts, route = train(gpt2c, data, tmp, args.cpu_isa, precision, B, T, steps)
                    runs[precision] += dts
            pair(f"GPT2C_CPU_ISA={args.cpu_isa} d12 B={B} T={T} ({route})", runs["fp32"], runs["bf16"],
                 "fp32", "bf16")
        for isa in (None, args.cpu_isa):
            runs = {False: [], True: []}
            for _ in range(args.rounds):
                for profile in runs:
                    runs[profile] += train(gpt2c, data, tmp, isa, "fp32", 4, 64, 8, profile)[0]
            pair(f"--profile, {'best level' if isa is None else 'GPT2C_CPU_ISA=' + isa} d12 B=4 T=64 fp32",
                 runs[False], runs[True], "off", "on")


if __name__ == "__main__":
    main()
