"""Training benchmark: `gpt2c train` against PyTorch on the same model, recipe, data and threads.

What is measured
  The wall time of one optimizer step (CPU) for a few (model, batch, sequence) configs, in fp32
  and in bf16 mixed precision: gpt2c as the `gpt2c train` command (--precision fp32|bf16), and a
  PyTorch implementation of the same model and recipe (fp32, or bf16 autocast). Per config and
  precision it reports the median step time of each, the ratio torch / gpt2c (above 1: gpt2c is
  faster), tokens per second, the peak resident memory of each process, an estimate of the
  achieved GFLOP/s, and the MFU: that GFLOP/s over the machine's GEMM peak in the same precision,
  measured in the same run by bench/gemm_bench.c (compiled here; the best of oneDNN's fp32 sgemm,
  or of its bf16 matmul, over the forward shapes of the d12 linear layers at 256 rows). Default
  configs: d12 (12 layers, 12 heads, 768 wide; GPT-2 124M) at B=4 T=64 and at B=8 T=256, and d6
  (6 layers, 6 heads, 384 wide) at B=16 T=256; --config adds others.

  bf16 on the PyTorch side is the seed's autocast on the CPU: the forward and the loss under
  torch.autocast("cpu", dtype=torch.bfloat16) (matmuls with bf16 inputs through oneDNN, fp32
  weights and optimizer), the backward and the step outside it. gpt2c --precision bf16 is the
  same split: bf16 inputs to every matmul (the LM head included), fp32 accumulation, fp32 master
  weights, AdamW state, LayerNorm, softmax, GELU and attention.

  gpt2c: `gpt2c train --model dN --data SHARDS --out-dir TMP --batch-size B --seq-len T
  --max-steps S --warmup-steps 1 --val-every 0 --ckpt-every 0 --threads N`, a fresh process per
  run; the step times are the dt_ms of TMP/log.jsonl, which gpt2c measures around zero-grad, the
  loader, forward, backward and the AdamW pass (with the global norm and clipping). gpt2c writes
  a checkpoint (model and optimizer state) after the last step; that is outside the step times
  but inside the process (and its peak memory).

  PyTorch: this file run as a worker in a fresh process (`--torch-worker`, so that its peak memory
  is its own): the GPT-2 of tests/torch_gpt2.py (Hugging Face layout: Conv1D x @ W + b, the
  attention written out with a masked softmax over the full T x T scores, since torch 1.13 has no
  scaled_dot_product_attention; LM head tied to wte), with the vocabulary padded to 50304 rows as
  build-nanogpt does (the logits and the cross-entropy run over all 50304 columns, like
  build-nanogpt; `--torch-vocab 50257` gives the unpadded model). gpt2c stores the vocabulary padded
  to 50304 too and runs its LM-head matmuls over all 50304 columns (the softmax over the 50257 real
  ones). The recipe is build-nanogpt's, single process: DataLoaderLite on the same train shard
  (the same batches as gpt2c's loader), AdamW (betas 0.9/0.95, eps 1e-8) with weight decay 0.1 on
  the 2-D parameters and 0 on the rest, torch's default single-tensor implementation (foreach
  unset, which torch 1.13 takes as False; fused=False where the installed torch knows the flag),
  torch.nn.utils.clip_grad_norm_(1.0), and the warmup + cosine learning rate of
  tests/torch_gpt2.get_lr with the same --max-steps and --warmup-steps 1. One step, timed with
  time.perf_counter, is: optimizer.zero_grad(), loader.next_batch(), forward with the loss,
  loss.item(), backward, clip_grad_norm_, setting the learning rate, optimizer.step(). Its
  phases (forward, backward, clip, optimizer) are timed too and printed for torch.

Why the comparison is fair
  * Same config, same batches, same number of steps, the same precision on both sides (fp32, or
    bf16 matmul inputs with fp32 accumulation and fp32 master weights), the same number of
    threads: torch.set_num_threads(N) in the worker, --threads N for gpt2c, and OMP_NUM_THREADS=N
    and OPENBLAS_NUM_THREADS=N in both environments. Debian's torch does its fp32 matmuls with
    the system BLAS (OpenBLAS, OpenMP flavour) and its bf16 ones with oneDNN 2.6, the same
    oneDNN gpt2c links; the report prints the libraries each process loaded.
  * The first step of every run is a warm-up (first touch of the weights, gradients, optimizer
    state and activations; BLAS buffers) and is dropped; the medians are over the other steps of
    all rounds.
  * The two run alternately (gpt2c, torch, gpt2c, torch, ...: --rounds), configs inside each
    round, so drifts in clock speed or machine load hit both alike. The run reports how busy the
    machine was with other processes meanwhile.
  * Peak memory: ru_maxrss of each process (os.wait4), i.e. the whole process: for torch this
    includes the Python interpreter and the torch library (about 0.25 GB), for gpt2c the final
    checkpoint.

GFLOP/s estimate (the model's useful arithmetic, the same count for both when the vocabularies
match; element-wise work such as LayerNorm, GELU, softmax and AdamW is not counted):
  flops per step = B*T * (6 * (N + V*C) + 6 * L * C * (T + 1))
  MFU = (flops per step / step time) / GEMM peak of the precision
  N = parameters of the transformer blocks and ln_f (all but wte and wpe): each is used in one
  multiply-add forward and two backward; V*C = the LM head (tied wte, V = 50304 padded, or the
  torch vocabulary), the same 6 flops per weight per token; 6*L*C*(T+1) = causal attention: per
  layer and head, the query of position t meets t+1 keys (QK^T and attention x V, 2*hs flops
  each, forward; twice that backward), summed over t and averaged per token. This is half of the
  non-causal 12*L*C*T of nanoGPT's estimate_mfu; the PyTorch model does compute the full T x T
  scores (and masks half), so its real count is a little higher than the one credited.

Run from the repository root:
  .venv/bin/python bench/train_bench.py [--rounds R] [--precision fp32|bf16|both] [--quick]
"""
import argparse
import datetime
import importlib.metadata
import inspect
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import find_gpt2c, gpt2c_blas, loaded_blas, lscpu, run_measured, thread_env

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "data/tinyshakespeare/input.txt"
PADDED_VOCAB = 50304
# The presets of `gpt2c train --model` (src/model/config.c): layers, heads, width.
PRESETS = {"d2": (2, 2, 128), "d4": (4, 4, 256), "d6": (6, 6, 384), "d12": (12, 12, 768),
           "d24": (24, 16, 1024), "d36": (36, 20, 1280), "d48": (48, 25, 1600)}
# model:BxT:steps; steps include the dropped warm-up step. A d12 step at B=8 T=256 takes about
# 10 s on 2 cores, so the default run (2 rounds) takes about 9 minutes there.
DEFAULT_CONFIGS = ["d12:4x64:8", "d12:8x256:6", "d6:16x256:6"]
N_POSITIONS = 1024

sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))


# ---- configs and the flop count ----

class BenchConfig:
    def __init__(self, spec):
        try:
            model, bt, steps = spec.split(":")
            b, t = bt.lower().split("x")
            self.model, self.B, self.T, self.steps = model, int(b), int(t), int(steps)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad config {spec!r}: want MODEL:BxT:STEPS, "
                                             "e.g. d12:4x64:8")
        if self.model not in PRESETS:
            raise argparse.ArgumentTypeError(f"unknown model {self.model!r} (one of "
                                             f"{' '.join(PRESETS)})")
        if self.steps < 2 or self.B < 1 or not 1 <= self.T <= N_POSITIONS:
            raise argparse.ArgumentTypeError(f"bad config {spec!r}: at least 2 steps (the first is "
                                             f"dropped), B >= 1, 1 <= T <= {N_POSITIONS}")
        self.L, self.NH, self.C = PRESETS[self.model]

    @property
    def name(self):
        return f"{self.model} B={self.B} T={self.T}"

    @property
    def tokens(self):
        return self.B * self.T

    def block_params(self):
        """Parameters of the blocks and ln_f: per layer 2 LayerNorms, c_attn, attn c_proj, c_fc,
        mlp c_proj (weights and biases); plus ln_f."""
        L, C = self.L, self.C
        per_layer = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
        return L * per_layer + 2 * C

    def flops_per_step(self, vocab):
        per_token = 6 * (self.block_params() + vocab * self.C) + 6 * self.L * self.C * (self.T + 1)
        return self.tokens * per_token


# ---- the PyTorch worker (runs in its own process) ----

def torch_worker(args):
    """Train the PyTorch model for args.steps steps; print one JSON line with the timings."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch_gpt2 as tg

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    L, NH, C = PRESETS[args.model]
    cfg = tg.Config(L, NH, C, N_POSITIONS)
    V = args.torch_vocab

    class PaddedGPT2(tg.GPT2):
        """tests/torch_gpt2.GPT2 with a wte of V rows; the logits and the cross-entropy over
        all V columns (build-nanogpt's model with vocab_size=50304)."""

        def __init__(self):
            super().__init__(cfg)
            self.wte = nn.Embedding(V, C)

        def forward(self, idx, targets):
            B, T = idx.shape
            x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
            for block in self.h:
                x = block(x)
            logits = self.ln_f(x) @ self.wte.weight.t()
            return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    model = PaddedGPT2()
    # tests/torch_gpt2.random_init's rule (GPT-2's init); the padded rows are random too, as in
    # build-nanogpt.
    proj_std = 0.02 / math.sqrt(2 * L)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("c_proj.weight"):
                p.normal_(0.0, proj_std)
            elif p.dim() == 2:
                p.normal_(0.0, 0.02)
            elif ".ln_" in name or name.startswith("ln_f"):
                p.fill_(1.0 if name.endswith(".weight") else 0.0)
            else:
                p.zero_()
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt_kw = {"lr": 6e-4, "betas": (0.9, 0.95), "eps": 1e-8}
    if "fused" in inspect.signature(torch.optim.AdamW.__init__).parameters:
        opt_kw["fused"] = False
    optimizer = torch.optim.AdamW(groups, **opt_kw)
    train_args = tg.TrainArgs(data=[args.data], batch_size=args.batch, seq_len=args.seq,
                              max_steps=args.steps, warmup_steps=1)
    loader = tg.DataLoaderLite(args.batch, args.seq, [args.data])
    model.train()

    steps, phases, losses = [], [], []
    for step in range(args.steps):
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        optimizer.zero_grad()
        x, y = loader.next_batch()
        if args.precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                _, loss = model(x, y)
        else:
            _, loss = model(x, y)
        loss_value = loss.item()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        t3 = time.perf_counter()
        lr = tg.get_lr(train_args, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        t4 = time.perf_counter()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        if not math.isfinite(loss_value) or not math.isfinite(float(norm)):
            sys.exit(f"torch worker: step {step}: loss {loss_value}, norm {float(norm)}")
        steps.append((t4 - t0) * 1e3)
        phases.append({"fwd": (t1 - t0) * 1e3, "bwd": (t2 - t1) * 1e3, "clip": (t3 - t2) * 1e3,
                       "opt": (t4 - t3) * 1e3, "sys_s": ru1.ru_stime - ru0.ru_stime,
                       "minflt": ru1.ru_minflt - ru0.ru_minflt})
        losses.append(loss_value)
    print(json.dumps({"dt_ms": steps, "phases": phases, "losses": losses,
                      "params": sum(p.numel() for p in params), "blas": loaded_blas(),
                      "threads": torch.get_num_threads()}))


# ---- running the two sides ----

def run_gpt2c(gpt2c_bin, cfg, data_dir, threads, tmp, precision):
    out_dir = Path(tmp) / "gpt2c-run"
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [str(gpt2c_bin), "train", "--model", cfg.model, "--data", str(data_dir / "train_*.bin"),
           "--out-dir", str(out_dir), "--batch-size", str(cfg.B), "--seq-len", str(cfg.T),
           "--max-steps", str(cfg.steps), "--warmup-steps", "1", "--val-every", "0",
           "--ckpt-every", "0", "--threads", str(threads), "--precision", precision]
    rc, out, err, use, wall = run_measured(cmd, thread_env(threads))
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({rc}):\n{err}{out}")
    records = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "dt_ms" in r]
    if len(steps) != cfg.steps:
        raise RuntimeError(f"gpt2c logged {len(steps)} steps, expected {cfg.steps}")
    shutil.rmtree(out_dir, ignore_errors=True)  # the checkpoint: ~2 GB for d12
    return {"dt_ms": [r["dt_ms"] for r in steps], "losses": [r["loss"] for r in steps],
            "wall": wall, **use}


def run_torch(cfg, data_dir, threads, vocab, seed, precision):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--torch-worker", "--model", cfg.model,
           "--precision", precision,
           "--batch", str(cfg.B), "--seq", str(cfg.T), "--steps", str(cfg.steps),
           "--threads", str(threads), "--torch-vocab", str(vocab), "--seed", str(seed),
           "--data", str(data_dir / "train_000000.bin")]
    rc, out, err, use, wall = run_measured(cmd, thread_env(threads), cwd=ROOT)
    if rc != 0:
        raise RuntimeError(f"torch worker failed ({rc}):\n{err}{out}")
    res = json.loads(out.strip().splitlines()[-1])
    res.update(wall=wall, **use)
    return res


def measure_gemm_peak(threads, tmp):
    """(fp32, bf16) GFLOP/s of bench/gemm_bench.c --peak-only, compiled here like gpt2c is."""
    exe = Path(tmp) / "gemm_bench"
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        sys.exit("no C compiler for bench/gemm_bench.c")
    subprocess.run([cc, "-O2", "-fopenmp", str(ROOT / "bench/gemm_bench.c"), "-o", str(exe),
                    "-ldnnl", "-ldl"], check=True)
    out = subprocess.run([str(exe), "--threads", str(threads), "--peak-only"], check=True,
                         capture_output=True, text=True, env=thread_env(threads)).stdout.split()
    return float(out[1]), float(out[3])


# ---- the report ----

def print_header(args, gpt2c_bin, build_dir):
    from tokenizer_bench import build_flags, cpu_model, git_revision
    import torch
    cpu = lscpu()
    print("# gpt2c training benchmark (CPU, fp32 and bf16): gpt2c train vs PyTorch")
    print(f"date:      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"cpu:       {cpu.get('Model name') or cpu_model()}; {cpu.get('CPU(s)', os.cpu_count())} "
          f"CPUs ({cpu.get('Socket(s)', '?')} socket x {cpu.get('Core(s) per socket', '?')} cores x "
          f"{cpu.get('Thread(s) per core', '?')} threads), usable by this process: "
          f"{len(os.sched_getaffinity(0))}"
          + (f", hypervisor {cpu['Hypervisor vendor']}" if cpu.get("Hypervisor vendor") else ""))
    print(f"memory:    {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB")
    print(f"os:        {platform.system()} {platform.release()}")
    print(f"python:    {platform.python_version()}  torch {torch.__version__} "
          f"(numpy {importlib.metadata.version('numpy')})")
    print(f"gpt2c:     {git_revision()}  build {build_dir}  C_FLAGS: {build_flags(build_dir)}")
    print(f"gpt2c libs: {', '.join(gpt2c_blas(gpt2c_bin)) or 'unknown'}")
    print(f"settings:  threads={args.threads} rounds={args.rounds} precisions={' '.join(args.precisions)} "
          f"torch vocab={args.torch_vocab} "
          f"(gpt2c: {PADDED_VOCAB} padded); configs {' '.join(c.name + f' ({c.steps} steps)' for c in args.configs)}; "
          "first step of every run dropped; medians over the rest")
    print()
    return torch.__version__


def fmt_list(xs):
    return "[" + ", ".join(f"{x:.0f}" for x in xs) + "]"


def summarize(cfg, precision, runs_g, runs_t, vocab, peak):
    g = [x for r in runs_g for x in r["dt_ms"][1:]]
    t = [x for r in runs_t for x in r["dt_ms"][1:]]
    res = {"cfg": cfg, "precision": precision, "g_ms": statistics.median(g), "t_ms": statistics.median(t),
           "g_rss": max(r["rss"] for r in runs_g), "t_rss": max(r["rss"] for r in runs_t),
           "g_all": g, "t_all": t}
    res["ratio"] = res["t_ms"] / res["g_ms"]
    res["g_tok_s"] = cfg.tokens / (res["g_ms"] / 1e3)
    res["t_tok_s"] = cfg.tokens / (res["t_ms"] / 1e3)
    res["g_gflops"] = cfg.flops_per_step(PADDED_VOCAB) / (res["g_ms"] / 1e3) / 1e9
    res["t_gflops"] = cfg.flops_per_step(vocab) / (res["t_ms"] / 1e3) / 1e9
    res["g_mfu"], res["t_mfu"] = res["g_gflops"] / peak, res["t_gflops"] / peak
    phases = [p for r in runs_t for p in r["phases"][1:]]
    res["t_phases"] = {k: statistics.median(p[k] for p in phases)
                       for k in ("fwd", "bwd", "clip", "opt", "sys_s", "minflt")}
    # Without the first two steps: PyTorch's second step is often still slow (its allocator hands
    # the big tensors back to the kernel and gets them again, fresh pages, each step; fewer as
    # glibc's mmap threshold adapts), so this is closer to its steady state.
    g2 = [x for r in runs_g for x in r["dt_ms"][2:]]
    t2 = [x for r in runs_t for x in r["dt_ms"][2:]]
    res["steady"] = (statistics.median(g2), statistics.median(t2)) if g2 and t2 else None
    return res


def print_details(results, runs):
    print("## Runs (step ms of each run; the first step of each run, in parentheses, is dropped)")
    for res in results:
        cfg, prec = res["cfg"], res["precision"]
        print(f"{cfg.name} {prec} ({cfg.L} layers, {cfg.NH} heads, {cfg.C} wide; {cfg.steps} steps per run; "
              f"{cfg.flops_per_step(PADDED_VOCAB) / 1e9:.1f} GFLOP per step counted):")
        for side in ("gpt2c", "torch"):
            for i, r in enumerate(runs[(cfg.name, prec)][side]):
                print(f"  {side} round {i + 1}: ({r['dt_ms'][0]:.0f}) {fmt_list(r['dt_ms'][1:])}; "
                      f"first loss {r['losses'][0]:.4f}, last {r['losses'][-1]:.4f}; "
                      f"peak RSS {r['rss'] / 2**30:.2f} GiB; process {r['wall']:.1f} s wall, "
                      f"{r['user_s']:.1f} s user, {r['sys_s']:.1f} s sys, "
                      f"{r['minflt'] / 1e6:.2f} M minor page faults")
        ph = res["t_phases"]
        print(f"  torch phases (median ms): forward+loss {ph['fwd']:.0f}, backward {ph['bwd']:.0f}, "
              f"clip_grad_norm_ {ph['clip']:.0f}, AdamW step {ph['opt']:.0f}; per step "
              f"{ph['sys_s']:.2f} s of system CPU, {ph['minflt'] / 1e3:.0f} K minor page faults")
        if res["steady"]:
            g2, t2 = res["steady"]
            print(f"  medians without the first two steps of each run: gpt2c {g2:.0f} ms, "
                  f"torch {t2:.0f} ms, torch / gpt2c {t2 / g2:.2f}x")
    print()


def print_table(results):
    print("| config | precision | gpt2c ms/step | torch ms/step | torch / gpt2c | gpt2c tok/s | "
          "torch tok/s | gpt2c GFLOP/s (MFU) | torch GFLOP/s (MFU) | gpt2c peak RSS | torch peak RSS |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['cfg'].name} | {r['precision']} | {r['g_ms']:.0f} | {r['t_ms']:.0f} | "
              f"{r['ratio']:.2f}x | {r['g_tok_s']:.0f} | {r['t_tok_s']:.0f} | "
              f"{r['g_gflops']:.0f} ({100 * r['g_mfu']:.0f}%) | {r['t_gflops']:.0f} ({100 * r['t_mfu']:.0f}%) | "
              f"{r['g_rss'] / 2**30:.2f} GiB | {r['t_rss'] / 2**30:.2f} GiB |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build", help="gpt2c build directory (default: build)")
    ap.add_argument("--config", dest="configs", type=BenchConfig, action="append",
                    help="MODEL:BxT:STEPS, e.g. d12:4x64:8 (repeatable; default: "
                    + " ".join(DEFAULT_CONFIGS) + ")")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each side per config (default 2)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for both (default: the number of CPUs)")
    ap.add_argument("--torch-vocab", type=int, choices=(PADDED_VOCAB, 50257), default=PADDED_VOCAB,
                    help="rows of the PyTorch model's wte (default 50304, build-nanogpt's padding)")
    ap.add_argument("--precision", choices=("fp32", "bf16", "both"), default="both",
                    help="gpt2c --precision and torch fp32 / bf16 autocast (default: both)")
    ap.add_argument("--quick", action="store_true",
                    help="one round of small configs (a smoke run, not for reporting)")
    ap.add_argument("--seed", type=int, default=1337, help=argparse.SUPPRESS)
    # the PyTorch worker, run by the benchmark itself
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        return torch_worker(args)
    args.precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]

    if args.quick:
        args.configs = args.configs or [BenchConfig("d4:4x64:4"), BenchConfig("d6:4x128:4")]
        args.rounds = 1
    args.configs = args.configs or [BenchConfig(s) for s in DEFAULT_CONFIGS]
    if args.rounds < 1 or args.threads < 1:
        sys.exit("--rounds and --threads must be at least 1")
    build_dir, gpt2c_bin = find_gpt2c(args.build_dir, ROOT)

    from tokenizer_bench import LoadMonitor, report_load
    torch_version = print_header(args, gpt2c_bin, build_dir)
    load = LoadMonitor()
    runs = {(c.name, p): {"gpt2c": [], "torch": []} for c in args.configs for p in args.precisions}
    torch_info = None
    with tempfile.TemporaryDirectory(prefix="gpt2c-train-bench-") as tmp:
        peak = dict(zip(("fp32", "bf16"), measure_gemm_peak(args.threads, tmp)))
        print(f"GEMM peak (bench/gemm_bench.c --peak-only, oneDNN, {args.threads} threads): "
              f"fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
        data_dir = Path(tmp) / "data"
        subprocess.run([str(gpt2c_bin), "prepare", "--input", str(SHAKESPEARE),
                        "--split-blank-lines", "--out-dir", str(data_dir), "--quiet"],
                       check=True, capture_output=True)
        print(f"data: tinyshakespeare tokenized by `gpt2c prepare --split-blank-lines`; "
              f"training batches from {data_dir.name}/train_000000.bin from its start (both sides)")
        for rnd in range(args.rounds):
            for cfg, prec in [(c, p) for c in args.configs for p in args.precisions]:
                t0 = time.monotonic()
                g = run_gpt2c(gpt2c_bin, cfg, data_dir, args.threads, tmp, prec)
                t = run_torch(cfg, data_dir, args.threads, args.torch_vocab, args.seed, prec)
                torch_info = t
                runs[(cfg.name, prec)]["gpt2c"].append(g)
                runs[(cfg.name, prec)]["torch"].append(t)
                print(f"round {rnd + 1}/{args.rounds} {cfg.name} {prec}: gpt2c median "
                      f"{statistics.median(g['dt_ms'][1:]):.0f} ms, torch median "
                      f"{statistics.median(t['dt_ms'][1:]):.0f} ms ({time.monotonic() - t0:.0f} s)",
                      flush=True)
    print(f"torch: {torch_info['threads']} threads; libs {', '.join(torch_info['blas']) or 'unknown'}")
    print()
    results = [summarize(c, p, runs[(c.name, p)]["gpt2c"], runs[(c.name, p)]["torch"],
                         args.torch_vocab, peak[p])
               for c in args.configs for p in args.precisions]
    print_details(results, runs)

    print("## Results (markdown)")
    print()
    print(f"Step time of `gpt2c train` and of PyTorch {torch_version} "
          f"({args.threads} threads, medians over {args.rounds} alternating runs each; "
          "GFLOP/s = 6*(N + V*C) + 6*L*C*(T+1) flops per token, see the docstring; MFU against "
          f"the GEMM peak measured in this run: fp32 {peak['fp32']:.0f}, bf16 {peak['bf16']:.0f} GFLOP/s):")
    print()
    print_table(results)

    report_load(load.other_cpus())
    for r in results:
        if r["ratio"] < 1.0:
            print(f"NOTE: gpt2c is slower than PyTorch on {r['cfg'].name} {r['precision']}: "
                  f"torch/gpt2c {r['ratio']:.2f}x")


if __name__ == "__main__":
    main()
