"""gpt2c against another build of gpt2c: the same training steps and samples, alternately, in one run.

For a change that must not move the step time (a redesign): build the commit before it in a
second directory (git worktree add /tmp/base <commit>; cmake -S /tmp/base -B /tmp/base/build
-DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF; cmake --build /tmp/base/build), then
  .venv/bin/python bench/ab_bench.py --base-build /tmp/base/build [--rounds 3]
d12 at B=4 T=64 (fp32, bf16) and B=8 T=256 (bf16), a fresh `gpt2c train` process per run, the
first step of each run dropped, medians of the rest (route_bench.py's runs). Then sampling: a d12
model (one training step from random init), 128 tokens after a 64-token prompt, 1 and 4 samples,
fp32 and bf16, the tokens/s `gpt2c sample` reports, medians.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_common import find_gpt2c
from route_bench import ROOT, pair, prepare_data, train


def make_model(gpt2c, data, tmp):
    """A d12 Hugging Face directory: one training step from random init."""
    out = Path(tmp) / "model-run"
    subprocess.run([str(gpt2c), "train", "--model", "d12", "--data", str(data), "--out-dir", str(out),
                    "--batch-size", "1", "--seq-len", "64", "--max-steps", "1", "--threads", "2"],
                   check=True, capture_output=True)
    return out / "model"


def sample_rate(gpt2c, model, precision, samples):
    """Tokens per second of one `gpt2c sample` run."""
    cmd = [str(gpt2c), "sample", "--model", str(model), "--prompt", "It was the best of times " * 8,
           "--max-tokens", "128", "--num-samples", str(samples), "--seed", "1", "--threads", "2",
           "--precision", precision]
    p = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="2"), capture_output=True,
                       text=True, errors="replace")
    m = re.search(r"\(([0-9.]+) tokens/s", p.stderr)
    if p.returncode != 0 or not m:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build", help="this build (default: build)")
    ap.add_argument("--base-build", required=True, help="the build to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    _, new = find_gpt2c(args.build_dir, ROOT)
    _, base = find_gpt2c(args.base_build, ROOT)
    with tempfile.TemporaryDirectory(prefix="gpt2c-ab-bench-") as tmp:
        data = prepare_data(new, tmp)
        for B, T, steps, precision in ((4, 64, 8, "fp32"), (4, 64, 8, "bf16"), (8, 256, 4, "bf16")):
            runs = {"base": [], "new": []}
            for _ in range(args.rounds):
                for side, gpt2c in (("base", base), ("new", new)):
                    runs[side] += train(gpt2c, data, tmp, None, precision, B, T, steps)[0]
            pair(f"d12 B={B} T={T} {precision}", runs["base"], runs["new"], "base", "new")
        model = make_model(new, data, tmp)
        for samples, precision in ((1, "fp32"), (1, "bf16"), (4, "fp32"), (4, "bf16")):
            rates = {"base": [], "new": []}
            for _ in range(args.rounds):
                for side, gpt2c in (("base", base), ("new", new)):
                    rates[side].append(sample_rate(gpt2c, model, precision, samples))
            a, b = statistics.median(rates["base"]), statistics.median(rates["new"])
            print(f"sample d12 {samples} x 128 tokens {precision}: base {a:.1f}, new {b:.1f} tokens/s "
                  f"({100 * (b / a - 1):+.1f}%); base {rates['base']}, new {rates['new']}", flush=True)


if __name__ == "__main__":
    main()
