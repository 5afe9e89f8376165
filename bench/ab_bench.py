"""gpt2c against another build of gpt2c: the same training steps, alternately, in one run.

For a change that must not move the step time (a redesign): build the commit before it in a
second directory (git worktree add /tmp/base <commit>; cmake -S /tmp/base -B /tmp/base/build
-DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF; cmake --build /tmp/base/build), then
  .venv/bin/python bench/ab_bench.py --base-build /tmp/base/build [--rounds 3]
d12 at B=4 T=64 (fp32, bf16) and B=8 T=256 (bf16), a fresh `gpt2c train` process per run, the
first step of each run dropped, medians of the rest (route_bench.py's runs).
"""
import argparse
import tempfile

from bench_common import find_gpt2c
from route_bench import ROOT, pair, prepare_data, train


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


if __name__ == "__main__":
    main()
