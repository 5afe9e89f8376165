#!/usr/bin/env python3
"""Compares the per-step loss and gradient norm of a `gpt2c train` run log (log.jsonl) with a
reference log of the same run (tests/gpu_reference/, made on the CPU in fp32), for
scripts/gpu-check.sh. Writes the per-step difference table (appended to --table), prints one
summary line, and exits 1 when a step is missing or not finite, or off by more than the tolerance:
- step by step over the first --tight-steps steps (default: all): |loss - ref| > --loss-tol, or
  |norm - ref| / ref > --norm-rtol;
- with --window W, over every W steps (after those, where two runs of a small batch part ways
  and single steps, above all the gradient norm's spikes, stop being comparable): the mean loss
  more than --window-loss-tol from the reference's, or the median norm more than
  --window-norm-rtol from its (relative).
Standard library only: it runs under whatever python3 the GPU machine has.

  gpu_compare_log.py --reference REF.jsonl --run RUN.jsonl --steps N --loss-tol A --norm-rtol R
                     [--tight-steps K --window W --window-loss-tol X --window-norm-rtol Y]
                     [--table FILE] [--title TEXT]
"""
import statistics
import argparse
import json
import math
import sys


def steps(path):
    """The training records of a log by step (validation and HellaSwag records have no loss)."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                if "loss" in rec:
                    out[rec["step"]] = rec
    return out


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--steps", type=int, required=True, help="compare steps 0..N-1")
    ap.add_argument("--loss-tol", type=float, required=True, help="absolute, on the loss")
    ap.add_argument("--norm-rtol", type=float, required=True, help="relative, on the gradient norm")
    ap.add_argument("--tight-steps", type=int, help="step-by-step checks on the first K steps only")
    ap.add_argument("--window", type=int, help="mean loss and median norm over every W steps")
    ap.add_argument("--window-loss-tol", type=float, default=0.0)
    ap.add_argument("--window-norm-rtol", type=float, default=0.0)
    ap.add_argument("--table", help="append the per-step table to this file")
    ap.add_argument("--title", default="")
    a = ap.parse_args()

    ref, run = steps(a.reference), steps(a.run)
    tight = a.steps if a.tight_steps is None else a.tight_steps
    rows, bad = [], []
    max_dl = max_dn = 0.0
    at_dl = at_dn = 0
    for s in range(a.steps):
        r, g = ref.get(s), run.get(s)
        if r is None:
            sys.exit(f"gpu_compare_log: the reference {a.reference} has no step {s}")
        if g is None or not finite(g.get("loss")) or not finite(g.get("norm")):
            bad.append(s)
            rows.append(f"{s:5d} {r['loss']:12.6f} {'missing' if g is None else 'not finite':>12}")
            continue
        dl = abs(g["loss"] - r["loss"])
        dn = abs(g["norm"] - r["norm"]) / r["norm"]
        over = s < tight and (dl > a.loss_tol or dn > a.norm_rtol)
        if over:
            bad.append(s)
        if s < tight and dl > max_dl:
            max_dl, at_dl = dl, s
        if s < tight and dn > max_dn:
            max_dn, at_dn = dn, s
        rows.append(f"{s:5d} {r['loss']:12.6f} {g['loss']:12.6f} {g['loss'] - r['loss']:+11.2e} "
                    f"{r['norm']:10.4f} {g['norm']:10.4f} {dn:10.2e}{'  OVER' if over else ''}")
    windows, bad_windows = [], []
    if a.window and not bad:
        for w0 in range(0, a.steps, a.window):
            span = range(w0, min(w0 + a.window, a.steps))
            dl = abs(statistics.mean(run[s]["loss"] for s in span) - statistics.mean(ref[s]["loss"] for s in span))
            rn = statistics.median(ref[s]["norm"] for s in span)
            dn = abs(statistics.median(run[s]["norm"] for s in span) - rn) / rn
            over = dl > a.window_loss_tol or dn > a.window_norm_rtol
            windows.append(f"steps {span[0]}-{span[-1]}: mean loss {dl:.2e} apart, median norm {dn:.2e}"
                           + ("  OVER" if over else ""))
            if over:
                bad_windows.append(f"{span[0]}-{span[-1]}")
    verdict = "PASS" if not bad and not bad_windows else "FAIL"
    summary = (f"{verdict}: {a.steps} steps, "
               + (f"the first {tight} " if tight < a.steps else "")
               + f"max |dloss| {max_dl:.2e} (step {at_dl}, tol {a.loss_tol:g}), "
               f"max rel dnorm {max_dn:.2e} (step {at_dn}, tol {a.norm_rtol:g})"
               + (f", {len(bad)} step(s) out: {bad[:10]}" if bad else "")
               + (f"; {len(windows)} windows of {a.window} (tol {a.window_loss_tol:g} loss, "
                  f"{a.window_norm_rtol:g} norm)" if windows else "")
               + (f", out: {bad_windows}" if bad_windows else ""))
    if a.table:
        with open(a.table, "a") as f:
            f.write(f"== {a.title or a.run} against {a.reference}\n")
            f.write(f"{'step':>5} {'ref loss':>12} {'loss':>12} {'dloss':>11} {'ref norm':>10} {'norm':>10} "
                    f"{'rel dnorm':>10}\n")
            f.write("\n".join(rows + windows) + "\n" + summary + "\n\n")
    print(summary)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
