"""Training benchmark: `gpt2c train` against PyTorch on the same model, recipe, data and threads.

What is measured
  The wall time of one optimizer step (CPU) for a few (model, batch, sequence) configs, in fp32
  and in bf16 mixed precision: gpt2c as the `gpt2c train` command (--precision fp32|bf16), and
  three PyTorch peers running the same model and recipe (fp32, or bf16 autocast):
    torch    Debian's torch 1.13 (python3-torch, seen through .venv): the attention written out,
             AdamW's single-tensor implementation. What the project's tests compare with.
    torch2   PyTorch 2.x from PyPI (bench/requirements-torch2.txt, installed by this benchmark
             into .venv-torch2: the peer a user would pick today), eager, with the fused
             attention F.scaled_dot_product_attention(is_causal=True) and AdamW(fused=True).
    torch2c  the same under torch.compile(model) (inductor, default mode; the backward compiled
             too, the optimizer step eager). Compiling is not a step: the first two steps of
             every run are dropped (one more than the others, which run one more step so every
             side measures as many steps) and reported apart, as the compile / first-step time.
  Per config and precision it reports the median step time of each side and its spread
  (min-max), the ratio peer / gpt2c (above 1: gpt2c is faster), tokens per second, the peak
  resident memory of each process, an estimate of the achieved GFLOP/s, and the MFU: that
  GFLOP/s over the machine's GEMM peak in the same precision, measured in the same run by
  bench/gemm_bench.c (compiled here; the best of oneDNN's fp32 sgemm, or of its bf16 matmul, over
  the forward shapes of the d12 linear layers at 256 rows; before and after the runs, the better
  of the two, since one measurement of a second or two on a busy machine can be far too low). Once per config and precision a
  separate, short `gpt2c train --profile --json` run shows where gpt2c's step goes (the timed
  runs stay unprofiled). Default configs: d12 (12 layers, 12 heads, 768 wide; GPT-2 124M) at B=4
  T=64 and at B=8 T=256, and d6 (6 layers, 6 heads, 384 wide) at B=16 T=256; --config adds
  others.

  bf16 on the PyTorch side is autocast on the CPU: the forward and the loss under
  torch.autocast("cpu", dtype=torch.bfloat16) (matmuls with bf16 inputs through oneDNN, fp32
  weights and optimizer), the backward and the step outside it; what else autocast lowers to bf16
  is autocast's choice (the attention matmuls in 1.13, SDPA in 2.x). gpt2c --precision bf16: bf16
  inputs to every matmul (the LM head included), fp32 accumulation, fp32 master weights, AdamW
  state, LayerNorm, softmax, GELU and attention.

  gpt2c: `gpt2c train --model dN --data SHARDS --out-dir TMP --batch-size B --seq-len T
  --max-steps S --warmup-steps 1 --val-every 0 --ckpt-every 0 --threads N`, a fresh process per
  run; the step times are the dt_ms of TMP/log.jsonl, which gpt2c measures around zero-grad, the
  loader, forward, backward and the AdamW pass (with the global norm and clipping). gpt2c writes
  a checkpoint (model and optimizer state) after the last step; that is outside the step times
  but inside the process (and its peak memory).

  PyTorch: this file run as a worker in a fresh process (`--torch-worker`, so that its peak memory
  is its own), with the peer's python: the GPT-2 of tests/torch_gpt2.py (Hugging Face layout:
  Conv1D x @ W + b; tanh GELU; LM head tied to wte; for torch 1.13 the attention written out with
  a masked softmax over the full T x T scores, for 2.x SDPA), with the vocabulary padded to 50304
  rows as build-nanogpt does (the logits and the cross-entropy run over all 50304 columns, like
  build-nanogpt; `--torch-vocab 50257` gives the unpadded model). gpt2c stores the vocabulary
  padded to 50304 too and runs its LM-head matmuls over all 50304 columns (the softmax over the
  50257 real ones). The recipe is build-nanogpt's, single process: DataLoaderLite on the same
  train shard (the same batches as gpt2c's loader), AdamW (betas 0.9/0.95, eps 1e-8) with weight
  decay 0.1 on the 2-D parameters and 0 on the rest (torch 1.13: the default single-tensor
  implementation; 2.x: fused=True), torch.nn.utils.clip_grad_norm_(1.0), and the warmup + cosine
  learning rate of tests/torch_gpt2.get_lr with the same --max-steps and --warmup-steps 1. One
  step, timed with time.perf_counter, is: optimizer.zero_grad(), loader.next_batch(), forward with
  the loss, loss.item(), backward, clip_grad_norm_, setting the learning rate, optimizer.step().
  Its phases (forward, backward, clip, optimizer) are timed too and printed. Everything else is
  PyTorch's default (allocator, inductor options): what a user gets.

Why the comparison is fair
  * Same config, same batches, the same number of measured steps, the same precision on all
    sides (fp32, or bf16 matmul inputs with fp32 accumulation and fp32 master weights), the same
    number of threads: torch.set_num_threads(N) in the worker, --threads N for gpt2c, and
    OMP_NUM_THREADS=N and OPENBLAS_NUM_THREADS=N in every environment. Debian's torch does its
    fp32 matmuls with the system BLAS (OpenBLAS, OpenMP flavour) and its bf16 ones with oneDNN 2.6,
    the same oneDNN gpt2c links; PyPI's torch has MKL and a newer oneDNN built in. The report
    prints what each process runs.
  * The same instruction set: --cpu-isa LEVEL (x86-64, avx2, avx512, avx512_bf16, amx) runs gpt2c
    with GPT2C_CPU_ISA=LEVEL and caps every PyTorch library alike (ATEN_CPU_CAPABILITY,
    ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS, OPENBLAS_CORETYPE, inductor's -march and vector
    ISA: bench_common.CPU_ISA_CAPS), and the GEMM peak of the MFU too: e.g. `--cpu-isa avx2`
    measures an AVX2-only CPU on an AVX-512 one. Without it each side takes the machine's best.
    Without AVX-512 PyTorch has no bf16 GEMM (ATen's reference loops, about 1-3 GFLOP/s, one
    thread; torch 1.13 is made to take them as it would on such a CPU, torch.backends.mkldnn off),
    so at x86-64 and avx2 --precision defaults to fp32 (--precision both forces bf16 too).
  * The first step of every run is a warm-up (first touch of the weights, gradients, optimizer
    state and activations; BLAS buffers) and is dropped (two for torch.compile); the medians are
    over the other steps of all rounds.
  * The sides run alternately (gpt2c, torch, torch2, torch2c, gpt2c, ...: --rounds), configs
    inside each round, so drifts in clock speed or machine load hit all alike. The run reports
    how busy the machine was with other processes meanwhile.
  * Peak memory: ru_maxrss of each process (os.wait4), i.e. the whole process: for torch this
    includes the Python interpreter and the torch library (about 0.25 GB; more for 2.x), for
    gpt2c the final checkpoint.
  * torch.compile's inductor cache is a fresh directory per benchmark run: the first round of a
    config compiles from scratch (what a user's first run pays), later rounds find its kernels
    there (a user's later runs).

GFLOP/s estimate (the model's useful arithmetic, the same count for all when the vocabularies
match; element-wise work such as LayerNorm, GELU, softmax and AdamW is not counted):
  flops per step = B*T * (6 * (N + V*C) + 6 * L * C * (T + 1))
  MFU = (flops per step / step time) / GEMM peak of the precision
  N = parameters of the transformer blocks and ln_f (all but wte and wpe): each is used in one
  multiply-add forward and two backward; V*C = the LM head (tied wte, V = 50304 padded, or the
  torch vocabulary), the same 6 flops per weight per token; 6*L*C*(T+1) = causal attention: per
  layer and head, the query of position t meets t+1 keys (QK^T and attention x V, 2*hs flops
  each, forward; twice that backward), summed over t and averaged per token. This is half of the
  non-causal 12*L*C*T of nanoGPT's estimate_mfu; torch 1.13's model does compute the full T x T
  scores (and masks half), so its real count is a little higher than the one credited.

Run from the repository root:
  .venv/bin/python bench/train_bench.py [--rounds R] [--precision fp32|bf16|both] [--quick]
      [--cpu-isa LEVEL] [--no-torch2]
"""
import argparse
import datetime
import inspect
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import (bench_parser, CPU_ISA_CAPS, cap_inductor, cpu_flags, cpu_isa_env, ensure_venv,
                          find_gpt2c, gpt2c_blas, loaded_blas, lscpu, run_measured, thread_env)

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "data/tinyshakespeare/input.txt"
TORCH2_VENV = ROOT / ".venv-torch2"
TORCH2_REQUIREMENTS = ROOT / "bench/requirements-torch2.txt"
PADDED_VOCAB = 50304
# The presets of `gpt2c train --model` (src/model/config.c): layers, heads, width.
PRESETS = {"d2": (2, 2, 128), "d4": (4, 4, 256), "d6": (6, 6, 384), "d12": (12, 12, 768),
           "d24": (24, 16, 1024), "d36": (36, 20, 1280), "d48": (48, 25, 1600)}
# model:BxT:steps; steps include the dropped warm-up step. A d12 step at B=8 T=256 takes 2-10 s
# on 2 cores (gpt2c bf16 to torch 1.13 fp32), torch.compile about 25 s more per run: the default
# run takes about 30 minutes there, about 25 with --cpu-isa avx2 (fp32 only).
DEFAULT_CONFIGS = ["d12:4x64:8", "d12:8x256:6", "d6:16x256:6"]
N_POSITIONS = 1024
# The sides: the worker mode of each PyTorch peer, and the steps each drops as warm-up.
TORCH_MODES = {"torch": "ref", "torch2": "eager", "torch2c": "compile"}
WARMUP = {"gpt2c": 1, "torch": 1, "torch2": 1, "torch2c": 2}
PROFILE_STEPS = 4  # of the separate `gpt2c train --profile` run (at most the config's steps)

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

    def steps_of(self, side):
        """Steps a side runs: its warm-up plus the config's measured steps (steps - 1)."""
        return self.steps - 1 + WARMUP[side]

    def block_params(self):
        """Parameters of the blocks and ln_f: per layer 2 LayerNorms, c_attn, attn c_proj, c_fc,
        mlp c_proj (weights and biases); plus ln_f."""
        L, C = self.L, self.C
        per_layer = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
        return L * per_layer + 2 * C

    def flops_per_step(self, vocab):
        per_token = 6 * (self.block_params() + vocab * self.C) + 6 * self.L * self.C * (self.T + 1)
        return self.tokens * per_token


# ---- the PyTorch worker (runs in its own process, with the peer's python) ----

def torch_info(torch, vec_isa):
    """What this torch runs: version, ATen's CPU capability, its BLAS / oneDNN, inductor's ISA."""
    config = torch.__config__.show()
    libs = [f"MKL {m.group(1)}" for m in re.finditer(r"Math Kernel Library Version ([\d.]+)", config)]
    libs += [f"oneDNN {m.group(1)}" for m in re.finditer(r"MKL-DNN (v[\d.]+)", config)]
    cap = re.findall(r"CPU capability usage: (\S+( \S+)?)", config)
    info = {"version": torch.__version__, "capability": cap[0][0] if cap else "?", "built_in": libs}
    if vec_isa is not None:
        from torch._inductor import config as inductor_config
        info["inductor"] = f"vector ISA {vec_isa}, -march={inductor_config.cpp.march or 'native'}"
    return info


def torch_worker(args):
    """Train the PyTorch model for args.steps steps; print one JSON line with the timings."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch_gpt2 as tg

    torch2 = args.torch_mode != "ref"  # PyPI's torch 2.x: SDPA and fused AdamW
    torch.set_num_threads(args.threads)
    if not torch2 and args.cpu_isa in ("x86-64", "avx2"):
        # torch 1.13 sends bf16 matmuls to oneDNN when cpuinfo reports AVX-512 (which then fails
        # under ONEDNN_MAX_CPU_ISA); on a CPU without AVX-512 it takes ATen's own bf16 GEMM, so
        # does this. Its fp32 matmuls are OpenBLAS's either way.
        torch.backends.mkldnn.enabled = False
    vec_isa = cap_inductor(args.cpu_isa) if args.torch_mode == "compile" else None
    torch.manual_seed(args.seed)
    L, NH, C = PRESETS[args.model]
    cfg = tg.Config(L, NH, C, N_POSITIONS)
    V = args.torch_vocab

    class SdpaAttention(tg.Attention):
        """tests/torch_gpt2.Attention with torch 2's fused causal attention."""

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class PaddedGPT2(tg.GPT2):
        """tests/torch_gpt2.GPT2 with a wte of V rows; the logits and the cross-entropy over
        all V columns (build-nanogpt's model with vocab_size=50304)."""

        def __init__(self):
            super().__init__(cfg)
            self.wte = nn.Embedding(V, C)
            if torch2:
                for block in self.h:
                    block.attn = SdpaAttention(cfg)

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
    if torch2:
        opt_kw["fused"] = True
    elif "fused" in inspect.signature(torch.optim.AdamW.__init__).parameters:
        opt_kw["fused"] = False
    optimizer = torch.optim.AdamW(groups, **opt_kw)
    train_args = tg.TrainArgs(data=[args.data], batch_size=args.batch, seq_len=args.seq,
                              max_steps=args.steps, warmup_steps=1)
    loader = tg.DataLoaderLite(args.batch, args.seq, [args.data])
    model.train()
    forward = torch.compile(model) if args.torch_mode == "compile" else model

    steps, phases, losses = [], [], []
    for step in range(args.steps):
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        optimizer.zero_grad()
        x, y = loader.next_batch()
        if args.precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                _, loss = forward(x, y)
        else:
            _, loss = forward(x, y)
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
                      "threads": torch.get_num_threads(), "info": torch_info(torch, vec_isa)}))


# ---- running the sides ----

def run_gpt2c(gpt2c_bin, cfg, data_dir, env, threads, tmp, precision, profile=False):
    out_dir = Path(tmp) / "gpt2c-run"
    shutil.rmtree(out_dir, ignore_errors=True)
    steps = min(cfg.steps, PROFILE_STEPS) if profile else cfg.steps
    cmd = [str(gpt2c_bin), "train", "--model", cfg.model, "--data", str(data_dir / "train_*.bin"),
           "--out-dir", str(out_dir), "--batch-size", str(cfg.B), "--seq-len", str(cfg.T),
           "--max-steps", str(steps), "--warmup-steps", "1", "--val-every", "0",
           "--ckpt-every", "0", "--threads", str(threads), "--precision", precision]
    if profile:
        cmd += ["--profile", "--json"]
    rc, out, err, use, wall = run_measured(cmd, env)
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({rc}):\n{err}{out}")
    records = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    dts = [r for r in records if "dt_ms" in r]
    if len(dts) != steps:
        raise RuntimeError(f"gpt2c logged {len(dts)} steps, expected {steps}")
    shutil.rmtree(out_dir, ignore_errors=True)  # the checkpoint: ~2 GB for d12
    res = {"dt_ms": [r["dt_ms"] for r in dts], "losses": [r["loss"] for r in dts],
           "wall": wall, **use}
    if profile:
        res["profile"] = json.loads(out.strip().splitlines()[-1])["profile"]
    return res


def run_torch(side, python, cfg, data_dir, env, args, precision):
    cmd = [str(python), str(Path(__file__).resolve()), "--torch-worker",
           "--torch-mode", TORCH_MODES[side], "--model", cfg.model, "--precision", precision,
           "--batch", str(cfg.B), "--seq", str(cfg.T), "--steps", str(cfg.steps_of(side)),
           "--threads", str(args.threads), "--torch-vocab", str(args.torch_vocab),
           "--seed", str(args.seed), "--data", str(data_dir / "train_000000.bin")]
    if args.cpu_isa:
        cmd += ["--cpu-isa", args.cpu_isa]
    rc, out, err, use, wall = run_measured(cmd, env, cwd=ROOT)
    if rc != 0:
        raise RuntimeError(f"{side} worker failed ({rc}):\n{err}{out}")
    res = json.loads(out.strip().splitlines()[-1])
    res.update(wall=wall, **use)
    return res


def measure_gemm_peak(env, threads, tmp):
    """(fp32, bf16) GFLOP/s of bench/gemm_bench.c --peak-only, compiled here like gpt2c is."""
    exe = Path(tmp) / "gemm_bench"
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        sys.exit("no C compiler for bench/gemm_bench.c")
    subprocess.run([cc, "-O2", "-fopenmp", str(ROOT / "bench/gemm_bench.c"), "-o", str(exe),
                    "-ldnnl", "-ldl"], check=True)
    out = subprocess.run([str(exe), "--threads", str(threads), "--peak-only"], check=True,
                         capture_output=True, text=True, env=env).stdout.split()
    return float(out[1]), float(out[3])


# ---- the report ----

def torch_versions(python):
    """(torch version, numpy version) of a python, without running a worker."""
    out = subprocess.run([str(python), "-c", "import torch, numpy; print(torch.__version__, "
                          "numpy.__version__)"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{python} cannot import torch:\n{out.stderr}")
    torch_v, numpy_v = out.stdout.split()
    return torch_v, numpy_v


def gpt2c_info(gpt2c_bin, env):
    """The lines of `gpt2c info` (what it runs, under the cap); exits with its error, e.g. a
    --cpu-isa above the machine's."""
    info = subprocess.run([str(gpt2c_bin), "info"], capture_output=True, text=True, env=env)
    if info.returncode != 0:
        sys.exit(f"gpt2c info: {info.stderr.strip()}")
    return info.stdout.splitlines()


def print_header(args, gpt2c_bin, build_dir, info, labels):
    from tokenizer_bench import build_flags, cpu_model, git_revision
    cpu = lscpu()
    print("# gpt2c training benchmark (CPU, fp32 and bf16): gpt2c train vs PyTorch")
    print(f"date:      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"cpu:       {cpu.get('Model name') or cpu_model()}; {cpu.get('CPU(s)', os.cpu_count())} "
          f"CPUs ({cpu.get('Socket(s)', '?')} socket x {cpu.get('Core(s) per socket', '?')} cores x "
          f"{cpu.get('Thread(s) per core', '?')} threads), usable by this process: "
          f"{len(os.sched_getaffinity(0))}"
          + (f", hypervisor {cpu['Hypervisor vendor']}" if cpu.get("Hypervisor vendor") else ""))
    print(f"cpu flags: {' '.join(cpu_flags()) or 'none of avx2 fma avx512* amx*'}")
    print("isa cap:   " + (f"--cpu-isa {args.cpu_isa}: "
                            + " ".join(f"{k}={v}" for k, v in cpu_isa_env(args.cpu_isa).items())
                            + "; inductor's vector ISA capped in the worker"
                            if args.cpu_isa else "none (every side takes the machine's best)"))
    print(f"memory:    {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB")
    print(f"os:        {platform.system()} {platform.release()}")
    print(f"python:    {platform.python_version()}; "
          + "; ".join(f"{side}: {label}" for side, label in labels.items()))
    print(f"gpt2c:     {git_revision()}  build {build_dir}  C_FLAGS: {build_flags(build_dir)}")
    print(f"gpt2c libs: {', '.join(gpt2c_blas(gpt2c_bin)) or 'unknown'}")
    for line in info:
        print(f"gpt2c info: {line}")
    print(f"settings:  threads={args.threads} rounds={args.rounds} precisions={' '.join(args.precisions)} "
          f"torch vocab={args.torch_vocab} "
          f"(gpt2c: {PADDED_VOCAB} padded); configs {' '.join(c.name + f' ({c.steps} steps)' for c in args.configs)}; "
          "first step of every run dropped (torch2c: two, in a run one step longer); medians over the rest")
    print()


def fmt_list(xs):
    return "[" + ", ".join(f"{x:.0f}" for x in xs) + "]"


def summarize(cfg, precision, sides, vocab, peak):
    """sides: side -> its runs. Per side: median step time and spread over the measured steps of
    all runs, throughput, GFLOP/s and MFU, peak RSS, torch's phases."""
    res = {"cfg": cfg, "precision": precision, "sides": {}}
    for side, runs in sides.items():
        w = WARMUP[side]
        xs = [x for r in runs for x in r["dt_ms"][w:]]
        s = {"ms": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs),
             "rss": max(r["rss"] for r in runs), "warmup": [r["dt_ms"][:w] for r in runs]}
        s["tok_s"] = cfg.tokens / (s["ms"] / 1e3)
        s["gflops"] = cfg.flops_per_step(PADDED_VOCAB if side == "gpt2c" else vocab) / (s["ms"] / 1e3) / 1e9
        s["mfu"] = s["gflops"] / peak
        # Without one more step: PyTorch's second step is often still slow (its allocator hands
        # the big tensors back to the kernel and gets them again, fresh pages, each step; fewer as
        # glibc's mmap threshold adapts), so this is closer to its steady state.
        later = [x for r in runs for x in r["dt_ms"][w + 1:]]
        s["steady"] = statistics.median(later) if later else None
        if side != "gpt2c":
            phases = [p for r in runs for p in r["phases"][w:]]
            s["phases"] = {k: statistics.median(p[k] for p in phases)
                           for k in ("fwd", "bwd", "clip", "opt", "sys_s", "minflt")}
        res["sides"][side] = s
    g = res["sides"]["gpt2c"]["ms"]
    for side, s in res["sides"].items():
        s["ratio"] = s["ms"] / g
    return res


def print_profile(prof, timed_ms):
    """One line of gpt2c's --profile: ms per step of each kind but the final checkpoint."""
    kinds = {k: v for k, v in prof["kinds"].items() if k != "checkpoint" and v["ms_per_step"] >= 0.05}
    step = sum(v["ms_per_step"] for v in kinds.values())
    parts = [f"{k} {v['ms_per_step']:.0f} ms ({100 * v['ms_per_step'] / step:.0f}%"
             + (f", {v['gflops']:.0f} GFLOP/s" if v.get("gflops") else "") + ")"
             for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["ms_per_step"])]
    print(f"  gpt2c --profile ({prof['steps']} steps, the first included; {step:.0f} ms/step "
          f"without the checkpoint; timed median {timed_ms:.0f} ms): {', '.join(parts)}")


def print_details(results, runs, infos, profiles, labels):
    print("## Runs (step ms of each run; the warm-up steps, in parentheses, are dropped)")
    for res in results:
        cfg, prec = res["cfg"], res["precision"]
        print(f"{cfg.name} {prec} ({cfg.L} layers, {cfg.NH} heads, {cfg.C} wide; {cfg.steps - 1} "
              f"measured steps per run; {cfg.flops_per_step(PADDED_VOCAB) / 1e9:.1f} GFLOP per step counted):")
        for side, s in res["sides"].items():
            w = WARMUP[side]
            for i, r in enumerate(runs[(cfg.name, prec)][side]):
                print(f"  {side} round {i + 1}: ({', '.join(f'{x:.0f}' for x in r['dt_ms'][:w])}) "
                      f"{fmt_list(r['dt_ms'][w:])}; loss {r['losses'][0]:.4f} at step 0, "
                      f"{r['losses'][cfg.steps - 1]:.4f} at step {cfg.steps - 1}; peak RSS {r['rss'] / 2**30:.2f} GiB; process "
                      f"{r['wall']:.1f} s wall, {r['user_s']:.1f} s user, {r['sys_s']:.1f} s sys, "
                      f"{r['minflt'] / 1e6:.2f} M minor page faults")
        for side, s in res["sides"].items():
            steady = f", without one more step {s['steady']:.0f}" if s["steady"] else ""
            line = (f"  {side}: median {s['ms']:.0f} ms, min {s['min']:.0f}, max {s['max']:.0f} "
                    f"({s['n']} steps{steady})")
            if "phases" in s:
                ph = s["phases"]
                line += (f"; phases (median ms): forward+loss {ph['fwd']:.0f}, backward "
                         f"{ph['bwd']:.0f}, clip_grad_norm_ {ph['clip']:.0f}, AdamW step "
                         f"{ph['opt']:.0f}; per step {ph['sys_s']:.2f} s of system CPU, "
                         f"{ph['minflt'] / 1e3:.0f} K minor page faults")
            print(line)
        if "torch2c" in res["sides"]:
            first = [sum(w) / 1e3 for w in res["sides"]["torch2c"]["warmup"]]
            print(f"  torch2c compile + first two steps: {', '.join(f'{x:.1f} s' for x in first)} "
                  "(round 1: empty inductor cache; later rounds: its kernels cached)")
        if (cfg.name, prec) in profiles:
            print_profile(profiles[(cfg.name, prec)], res["sides"]["gpt2c"]["ms"])
    print()
    for side, label in labels.items():
        info = infos.get(side)
        if info:
            print(f"{side}: {label}; {info['threads']} threads; ATen CPU capability "
                  f"{info['info']['capability']}; built in: {', '.join(info['info']['built_in']) or 'none'}; "
                  f"loaded: {', '.join(info['blas']) or 'unknown'}"
                  + (f"; inductor: {info['info']['inductor']}" if "inductor" in info["info"] else ""))
    print()


def print_tables(results, labels):
    peers = [s for s in labels if s != "gpt2c"]
    head = (["config", "precision", "gpt2c ms/step"] + [f"{labels[p]} ms/step" for p in peers]
            + [f"{labels[p]} / gpt2c" for p in peers] + ["gpt2c tok/s"]
            + [f"{labels[s]} GFLOP/s (MFU)" for s in labels])
    print("| " + " | ".join(head) + " |")
    print("|---|---|" + "---:|" * (len(head) - 2))
    for r in results:
        s = r["sides"]
        cells = ([r["cfg"].name, r["precision"], f"{s['gpt2c']['ms']:.0f}"]
                 + [f"{s[p]['ms']:.0f}" for p in peers] + [f"{s[p]['ratio']:.2f}x" for p in peers]
                 + [f"{s['gpt2c']['tok_s']:.0f}"]
                 + [f"{s[x]['gflops']:.0f} ({100 * s[x]['mfu']:.0f}%)" for x in labels])
        print("| " + " | ".join(cells) + " |")
    print()
    print("Spread, warm-up and memory (ms over the measured steps of all rounds; warm-up = the "
          "dropped steps of each round, for torch.compile its compile time):")
    print()
    print("| config | precision | side | median ms | min-max ms | steps | warm-up ms | peak RSS |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        for side, s in r["sides"].items():
            warm = "; ".join("+".join(f"{x:.0f}" for x in w) for w in s["warmup"])
            print(f"| {r['cfg'].name} | {r['precision']} | {labels[side]} | {s['ms']:.0f} | "
                  f"{s['min']:.0f}-{s['max']:.0f} | {s['n']} | {warm} | {s['rss'] / 2**30:.2f} GiB |")
    print()


def main():
    ap = bench_parser(__doc__)
    ap.add_argument("--config", dest="configs", type=BenchConfig, action="append",
                    help="MODEL:BxT:STEPS, e.g. d12:4x64:8 (repeatable; default: "
                    + " ".join(DEFAULT_CONFIGS) + ")")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each side per config (default 2)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for all (default: the number of CPUs)")
    ap.add_argument("--torch-vocab", type=int, choices=(PADDED_VOCAB, 50257), default=PADDED_VOCAB,
                    help="rows of the PyTorch model's wte (default 50304, build-nanogpt's padding)")
    ap.add_argument("--precision", choices=("fp32", "bf16", "both"),
                    help="gpt2c --precision and torch fp32 / bf16 autocast (default: both; fp32 "
                    "with --cpu-isa x86-64 or avx2)")
    ap.add_argument("--cpu-isa", choices=list(CPU_ISA_CAPS),
                    help="run every side as on a CPU with at most this instruction set "
                    "(GPT2C_CPU_ISA for gpt2c; the matching caps for PyTorch and the GEMM peak)")
    ap.add_argument("--no-torch2", action="store_true",
                    help="leave out PyTorch 2.x (and do not make .venv-torch2)")
    ap.add_argument("--quick", action="store_true",
                    help="one round of small configs (a smoke run, not for reporting)")
    ap.add_argument("--seed", type=int, default=1337, help=argparse.SUPPRESS)
    # the PyTorch worker, run by the benchmark itself
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-mode", choices=tuple(TORCH_MODES.values()), default="ref",
                    help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        return torch_worker(args)
    if args.precision is None:
        # Without AVX-512 PyTorch's bf16 matmuls fall back to ATen's reference GEMM, about 1
        # GFLOP/s here: a d12 B=8 T=256 step would take half an hour.
        args.precision = "fp32" if args.cpu_isa in ("x86-64", "avx2") else "both"
    args.precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]

    if args.quick:
        args.configs = args.configs or [BenchConfig("d4:4x64:4"), BenchConfig("d6:4x128:4")]
        args.rounds = 1
    args.configs = args.configs or [BenchConfig(s) for s in DEFAULT_CONFIGS]
    if args.rounds < 1 or args.threads < 1:
        sys.exit("--rounds and --threads must be at least 1")
    build_dir, gpt2c_bin = find_gpt2c(args.build_dir, ROOT)
    env = {**thread_env(args.threads), **cpu_isa_env(args.cpu_isa)}
    info = gpt2c_info(gpt2c_bin, env)

    pythons = {"torch": Path(sys.executable)}
    if not args.no_torch2:
        torch2_python = ensure_venv(TORCH2_VENV, TORCH2_REQUIREMENTS,
                                    log=lambda m: print(f"train_bench: {m}", file=sys.stderr, flush=True))
        pythons.update(torch2=torch2_python, torch2c=torch2_python)
    versions = {side: torch_versions(py) for side, py in pythons.items()}
    labels = {"gpt2c": "gpt2c"}  # the tables' names: torch X.Y, and how 2.x runs
    labels.update({side: "torch " + ".".join(versions[side][0].split(".")[:2])
                   + {"torch": "", "torch2": " eager", "torch2c": " compiled"}[side] for side in pythons})

    from tokenizer_bench import LoadMonitor, report_load
    with tempfile.TemporaryDirectory(prefix="gpt2c-train-bench-") as tmp:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor-cache")
        print_header(args, gpt2c_bin, build_dir, info,
                     {s: f"torch {versions[s][0]} (numpy {versions[s][1]}, {pythons[s]})" for s in pythons})
        load = LoadMonitor()
        runs = {(c.name, p): {side: [] for side in labels} for c in args.configs for p in args.precisions}
        infos, profiles = {}, {}
        peaks = [measure_gemm_peak(env, args.threads, tmp)]  # and again at the end: the best
        data_dir = Path(tmp) / "data"
        subprocess.run([str(gpt2c_bin), "prepare", "--input", str(SHAKESPEARE),
                        "--split-blank-lines", "--out-dir", str(data_dir), "--quiet"],
                       check=True, capture_output=True)
        print(f"data: tinyshakespeare tokenized by `gpt2c prepare --split-blank-lines`; "
              f"training batches from {data_dir.name}/train_000000.bin from its start (all sides)")
        for rnd in range(args.rounds):
            for cfg, prec in [(c, p) for c in args.configs for p in args.precisions]:
                t0 = time.monotonic()
                done = runs[(cfg.name, prec)]
                done["gpt2c"].append(run_gpt2c(gpt2c_bin, cfg, data_dir, env, args.threads, tmp, prec))
                for side, python in pythons.items():
                    done[side].append(run_torch(side, python, cfg, data_dir, env, args, prec))
                    infos[side] = done[side][-1]
                if rnd == 0:
                    profiles[(cfg.name, prec)] = run_gpt2c(gpt2c_bin, cfg, data_dir, env, args.threads,
                                                           tmp, prec, profile=True)["profile"]
                medians = ", ".join(f"{side} {statistics.median(done[side][-1]['dt_ms'][WARMUP[side]:]):.0f}"
                                    for side in labels)
                print(f"round {rnd + 1}/{args.rounds} {cfg.name} {prec}: median ms {medians} "
                      f"({time.monotonic() - t0:.0f} s)", flush=True)
        other_cpus = load.other_cpus()
        peaks.append(measure_gemm_peak(env, args.threads, tmp))
    peak = {"fp32": max(p[0] for p in peaks), "bf16": max(p[1] for p in peaks)}
    print(f"GEMM peak (bench/gemm_bench.c --peak-only, oneDNN, {args.threads} threads"
          + (f", ONEDNN_MAX_CPU_ISA={env['ONEDNN_MAX_CPU_ISA']}" if args.cpu_isa else "")
          + f"; the better of before and after the runs): fp32 {peak['fp32']:.0f} GFLOP/s "
          f"({peaks[0][0]:.0f}, {peaks[1][0]:.0f}), bf16 {peak['bf16']:.0f} GFLOP/s "
          f"({peaks[0][1]:.0f}, {peaks[1][1]:.0f})")
    if peak["bf16"] < peak["fp32"]:  # none, or oneDNN emulating it: a bf16 step can use fp32's
        peak["bf16"] = peak["fp32"]
        if "bf16" in args.precisions:
            print("  (bf16 matmuls are emulated at this ISA, slower than fp32: bf16's MFU is "
                  "against the fp32 peak)")
    print()
    results = [summarize(c, p, {side: runs[(c.name, p)][side] for side in labels},
                         args.torch_vocab, peak[p])
               for c in args.configs for p in args.precisions]
    print_details(results, runs, infos, profiles, labels)

    print("## Results (markdown)")
    print()
    print(f"Step time of `gpt2c train` and of PyTorch ({', '.join(labels[s] for s in pythons)}; "
          f"{args.threads} threads, "
          + (f"--cpu-isa {args.cpu_isa}, " if args.cpu_isa else "")
          + f"medians over {args.rounds} alternating runs each; GFLOP/s = 6*(N + V*C) + 6*L*C*(T+1) "
          "flops per token, see the docstring; MFU against the GEMM peak measured in this run: "
          f"fp32 {peak['fp32']:.0f}, bf16 {peak['bf16']:.0f} GFLOP/s):")
    print()
    print_tables(results, labels)

    report_load(other_cpus)
    for r in results:
        for side, s in r["sides"].items():
            if s["ratio"] < 1.0:
                print(f"NOTE: gpt2c is slower than {labels[side]} on {r['cfg'].name} "
                      f"{r['precision']}: {side}/gpt2c {s['ratio']:.2f}x")


if __name__ == "__main__":
    main()
