"""Sampling benchmark: `gpt2c sample` against a PyTorch GPT-2 with a KV cache and llama.cpp, same model and threads.

What is measured
  Tokens per second of generation (float32, CPU) for a few (samples, new tokens) configs, on one
  random-init GPT-2 (default d12: 12 layers, 12 heads, 768 wide, 1024 positions; GPT-2's init,
  tests/torch_gpt2.random_init) written once as a Hugging Face directory in a temp dir, which both
  sides load. Prompt "Hello, I'm a language model," (8 tokens); top-k 50, temperature 1. Default
  configs: batch (--num-samples) 1 and 5, 30 and 500 new tokens each.

  gpt2c: `gpt2c sample --model DIR --prompt P --num-samples B --max-tokens N --threads T --json`,
  a fresh process per run. Its stderr summary line, e.g. `gpt2c: 8 prompt tokens, 150 tokens
  generated in 0.12 s (329.0 tokens/s; prompt 6 ms, model load 53 ms)`, gives the three phases:
  model load (reading the safetensors, the KV cache allocated and written), prompt (the prompt's
  one forward pass, a batch of one, its cache copied to the B samples), and generation (B x N
  tokens: the first of each sample from the prompt's logits, then N - 1 one-token steps of the B
  samples together, the top-k sampling of every token included). Generation time = tokens /
  (tokens/s), which the line prints to more digits than the seconds.

  PyTorch: this file run as a worker in a fresh process (--torch-worker): bench/torch_gpt2_kv.py,
  a GPT-2 with a KV cache over the weights of tests/torch_gpt2.load_hf_dir, under
  torch.inference_mode(), float32. The same three phases, timed with time.perf_counter:
  load (load_hf_dir + the cache tensors allocated and zeroed, as gpt2c does at load), prefill
  (the prompt once, a batch of one; its keys and values copied to the B samples), generation
  (build-nanogpt's sampling: softmax, torch.topk(50), torch.multinomial, torch.gather; then
  N - 1 one-token steps of the B samples together). Two choices, each the faster of two
  (`--compare` runs the other of each too, in every round; on 2026-11-23, d12, 2 threads):
    - the KV cache is preallocated, (B, heads, n + N - 1, head size) per layer, written in place
      and attended over as a strided view; growing it by torch.cat (`--torch-cache concat`) is
      as fast for 30 tokens and slower for 500 (B=5: 76.9 against 70.3 ms per step).
    - the linear layers are F.linear on weights transposed once at load to nn.Linear's
      [out, in], as build-nanogpt's from_pretrained does with these checkpoints, which is also
      gpt2c's layout and BLAS call; Hugging Face's Conv1D addmm on [in, out]
      (`--torch-linear conv1d`) is slower on this OpenBLAS (B=5 N=500: 82.5 against 70.3 ms).
  The LM head is tied to wte and runs over the 50257 real rows (gpt2c's over its 50304 padded
  rows: 0.09% more).

Reported, per config (medians over --rounds runs of each side):
  generation tokens/s (all B samples together: B * N / generation time), the ratio gpt2c / torch
  (above 1: gpt2c is faster), ms per decoding step (generation time / (N - 1): the N - 1
  one-token forward passes of the B samples, with the sampling of all N tokens spread over
  them), prefill ms, end-to-end ms excluding model load (prefill + generation), and in the
  details the load times, process wall and peak RSS.

Why the comparison is fair
  * Same weights, prompt, configs, float32, same number of threads: --threads T for gpt2c,
    torch.set_num_threads(T) in the worker, and OMP_NUM_THREADS=T and OPENBLAS_NUM_THREADS=T in
    both environments. Debian's torch does its matmuls with the system BLAS, the same OpenBLAS
    (OpenMP flavour) gpt2c links; the report prints the BLAS each process loaded.
  * Both are fresh processes run the way a user would run them: no warm-up pass on either side.
  * The two run alternately (in round r, gpt2c first when r is odd, torch first when even;
    configs inside each round), so drifts in clock speed or machine load hit both alike. The run
    reports how busy the machine was with other processes meanwhile.
  * Before timing, a check: the torch KV-cache logits against a full recomputation, and greedy
    continuations (top-k 1) of gpt2c and torch, token for token.

Where the time goes (unless --no-roofline)
  A decoding step at batch 1 is a chain of matrix-vector products that read every weight once:
  d12 holds 85M block weights + the 50304 x 768 LM head = 124M floats, about 495 MB per step,
  plus the KV cache read by attention (2 x 12 layers x position x 768 floats per sample). So the
  step is bound by memory bandwidth, not arithmetic (2 flops per 4 bytes read). This measures the
  machine's read bandwidth (bench/membw.c, compiled here: a summing pass and a memcpy over a
  buffer the size of the weights, OpenMP, T threads), replays one decoding step's matmuls through
  the same OpenBLAS calls gpt2c makes (cblas_sgemm row-major, W [out, in] transposed, in layer
  order over separate weight buffers as big as the model's) and, for comparison, those of
  Hugging Face's Conv1D layout (W [in, out]) and of sgemv; and prints each side's ms per step
  against the bound (weights + KV cache bytes) / read bandwidth.

llama.cpp, the other peer (unless --no-llama; --no-torch runs it alone)
  llama-cpp-python (bench/requirements-llama.txt), built from its PyPI sdist, i.e. from the
  llama.cpp source it vendors, by this benchmark into .venv-llama (Debian's python3 -m venv
  --system-site-packages; idempotent: a stamp of the requirements and the CMake options; the first
  build takes 5-15 minutes on 2 cores). The same random-init model is converted to GGUF, f32 and
  f16, by that source's own vendor/llama.cpp/convert_hf_to_gguf.py (its own gguf-py; the tokenizer
  files it wants are gpt2c's data/gpt2 ones). Each run is a fresh process (--llama-worker, the
  venv's python) driving llama.cpp's C API through llama_cpp's low-level ctypes bindings:
  llama_model_load_from_file (read into memory, no mmap, as gpt2c reads its safetensors),
  llama_init_from_model (n_threads = n_threads_batch = --threads; n_seq_max B, one KV stream per
  sequence, llama.cpp's default KV cache type f16 unless --llama-kv f32; flash attention as its
  default "auto" decides), then the same three phases as the other sides: the prompt in one
  llama_decode as sequence 0, its cache copied to sequences 1..B-1 (llama_memory_seq_cp); the B
  first tokens sampled from its logits; then N - 1 llama_decode calls of B tokens, one per
  sequence (llama.cpp's batched API, as its examples/batched does), each followed by B draws of
  llama.cpp's sampler chain (top-k 50, then dist seeded). The prompt is given as gpt2c's token ids.
  Sides, alternating in every round: gpt2c fp32, gpt2c --precision bf16 (bf16 weights), llama.cpp
  f32 GGUF, llama.cpp f16 GGUF. Configs (--llama-config BxN@P): 1x128@16 (batch 1: decoding),
  1x16@512 (a 512-token prompt: prefill tokens/s), 8x128@16 (8 sequences decoding together).
  Reported: decoding tok/s, ms per step and prefill tok/s (P / prompt time) per side, medians;
  the ratios gpt2c bf16 / llama.cpp f16 (the goal at batch 1: at least 1) and fp32 / f32; each
  gpt2c run's route (the end of its summary line: which kernels ran) and each llama.cpp run's
  split between llama_decode and sampling. Before timing, a check: greedy continuations (2
  sequences, one batch) of the f32 GGUF against gpt2c fp32, with an f32 and with the default
  KV cache, and of the f16 GGUF against gpt2c bf16 (rounded differently: information only).
  The header prints llama_print_system_info() (the ggml CPU features the loaded build has) and
  the lines of llama.cpp's load log that say how it runs GPT-2.

The instruction set (--cpu-isa x86-64|avx2|avx512|avx512_bf16|amx)
  gpt2c runs with GPT2C_CPU_ISA=LEVEL (it caps its own kernels, oneDNN and OpenBLAS; the header
  prints `gpt2c info`), PyTorch with bench_common.cpu_isa_env's caps (ATen, oneDNN, OpenBLAS).
  ggml chooses its CPU kernels at compile time (GGML_NATIVE=ON: -march=native). Its runtime
  choice among CPU variants (a GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS build) loads the variant
  the CPU scores best, with no setting to force a lower one (GGML_BACKEND_PATH only adds one),
  and llama-cpp-python's bindings do no backend loading of their own; so a capped llama.cpp is a
  second build, into .venv-llama-LEVEL, with GGML_NATIVE=OFF and each GGML_<EXT> option on or off
  for that level (bench_common.llama_cmake_args). amx on an AMX CPU is the native build.

Run from the repository root:  .venv/bin/python bench/sample_bench.py [--rounds R] [--quick]
    [--cpu-isa LEVEL] [--no-torch] [--no-llama] [--llama-config BxN@P ...] [--llama-kv f32]
"""
import argparse
import ctypes
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import (bench_parser, CPU_ISA_CAPS, cpu_flags, cpu_isa_env, ensure_llama_venv, find_gpt2c, gpt2c_blas,
                          llama_cmake_args, loaded_blas, lscpu, run_measured, thread_env)

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Hello, I'm a language model,"
VOCAB, PADDED_VOCAB = 50257, 50304
PRESETS = {"d2": (2, 2, 128), "d4": (4, 4, 256), "d6": (6, 6, 384), "d12": (12, 12, 768),
           "d24": (24, 16, 1024)}
N_POSITIONS = 1024
DEFAULT_CONFIGS = ["1x30", "5x30", "1x500", "5x500"]
MODEL_SEED = 1337
SAMPLE_SEED = 42

sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

SUMMARY_RE = re.compile(r"gpt2c: (\d+) prompt tokens, (\d+) tokens generated in ([\d.]+) s "
                        r"\(([\d.]+) tokens/s; prompt ([\d.]+) ms, model load ([\d.]+) ms; "
                        r"((?:[^()]|\([^()]*\))*)\)")  # the route may hold one level of parentheses


class Config:
    """SAMPLESxTOKENS, or SAMPLESxTOKENS@PROMPT (the llama.cpp part: a prompt of PROMPT tokens)."""

    def __init__(self, spec):
        try:
            bn, _, p = spec.lower().partition("@")
            b, n = bn.split("x")
            self.B, self.N, self.P = int(b), int(n), (int(p) if p else None)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad config {spec!r}: want SAMPLESxTOKENS[@PROMPT], e.g. 5x30 "
                                             "or 1x128@16")
        if self.B < 1 or self.N < 2 or (self.P is not None and self.P < 1):
            raise argparse.ArgumentTypeError(f"bad config {spec!r}: at least 1 sample, 2 tokens, 1 prompt token")

    @property
    def name(self):
        return f"B={self.B} N={self.N}" + (f" P={self.P}" if self.P is not None else "")


# ---- the PyTorch worker (runs in its own process) ----

def torch_worker(args):
    """Load the model, prefill, generate; print one JSON line with the phase timings."""
    t_start = time.perf_counter()
    import torch
    import torch_gpt2 as tg
    import torch_gpt2_kv as kv

    torch.set_num_threads(args.threads)
    ids = [int(x) for x in args.prompt_ids.split(",")]
    B, N, n = args.batch, args.tokens, len(ids)
    t_import = time.perf_counter()
    with torch.inference_mode():
        t0 = time.perf_counter()
        model = kv.KVGPT2(tg.load_hf_dir(args.model_dir), linear=args.torch_linear)
        cache = model.new_cache(B, n + N - 1, args.torch_cache)
        gen = torch.Generator().manual_seed(args.seed)
        out = torch.empty(B, N, dtype=torch.long)
        t1 = time.perf_counter()
        logits = model.prefill(ids, cache)
        t2 = time.perf_counter()
        fwd, smp = [], []
        pos = n
        for step in range(N):
            a = time.perf_counter()
            nxt = kv.sample_top_k(logits, 50, gen)
            out[:, step:step + 1] = nxt
            b = time.perf_counter()
            smp.append(b - a)
            if step == N - 1:
                break
            logits = model.forward(nxt, cache, pos)
            pos += 1
            fwd.append(time.perf_counter() - b)
        t3 = time.perf_counter()
    print(json.dumps({
        "import_ms": (t_import - t_start) * 1e3, "load_ms": (t1 - t0) * 1e3,
        "prompt_ms": (t2 - t1) * 1e3, "gen_ms": (t3 - t2) * 1e3, "generated": B * N,
        "fwd_ms_median": statistics.median(fwd) * 1e3, "fwd_ms_first": fwd[0] * 1e3,
        "sample_ms_median": statistics.median(smp) * 1e3,
        "fwd_ms_sum": sum(fwd) * 1e3, "sample_ms_sum": sum(smp) * 1e3,
        "ids_ok": bool((out >= 0).all() and (out < VOCAB).all()),
        "blas": loaded_blas(), "threads": torch.get_num_threads(), "torch": torch.__version__}))


def make_model_worker(args):
    """Write the random-init model as a Hugging Face directory (in its own process, so that the
    benchmark's parent never holds torch or the model: a child's peak RSS, read with wait4, starts
    from its parent's at the fork)."""
    import torch_gpt2 as tg
    L, NH, C = PRESETS[args.model]
    tg.save_hf_dir(tg.random_init(tg.Config(L, NH, C, N_POSITIONS), MODEL_SEED), args.model_dir)


def check_worker(args):
    """The torch side's correctness: KV-cache logits against a full recomputation after some
    sampled steps, and a greedy continuation (printed for the parent to compare with gpt2c)."""
    import torch
    import torch_gpt2 as tg
    import torch_gpt2_kv as kv

    torch.set_num_threads(args.threads)
    ids = [int(x) for x in args.prompt_ids.split(",")]
    with torch.inference_mode():
        ref = tg.load_hf_dir(args.model_dir)
        model = kv.KVGPT2(ref, linear=args.torch_linear)
        res = {"torch": torch.__version__}
        for mode in ("prealloc", "concat"):
            cont = kv.generate(model, ids, 3, 16, top_k=50, seed=1, mode=mode)
            seqs = torch.cat((torch.tensor([ids] * 3), cont), dim=1)
            cache = model.new_cache(3, seqs.size(1), mode)
            model.prefill(ids, cache)
            for p in range(len(ids), seqs.size(1)):
                logits = model.forward(seqs[:, p:p + 1], cache, p)
            full = ref(seqs)[:, -1]
            res[f"maxdiff_{mode}"] = float((logits - full).abs().max())
        res["greedy"] = kv.generate(model, ids, 2, args.tokens, top_k=1).tolist()
    print(json.dumps(res))


# ---- the matmul replay (runs in its own process, without torch) ----

def replay_worker(args):
    """Time one decoding step's matmuls through OpenBLAS (the library gpt2c links), for B rows:
    12 layers x (qkv, attn proj, fc, mlp proj) + the LM head, each layer's weights in their own
    buffers (as in the model, ~495 MB for d12). Three ways: "linear", gpt2c's call (cblas_sgemm
    row-major, x [B, in] times W [out, in] transposed), which is also what torch's F.linear makes;
    "conv1d", Hugging Face's Conv1D addmm (W [in, out], not transposed); and "sgemv" (B = 1).
    The LM head is 50304 x C, gpt2c's, in every way. Prints per-op medians (ms) as JSON."""
    import numpy as np

    blas = ctypes.CDLL(args.blas_lib)
    L, _, C = PRESETS[args.model]
    shapes = [("qkv", C, 3 * C), ("attn_proj", C, C), ("fc", C, 4 * C), ("mlp_proj", 4 * C, C)]
    rng = np.random.default_rng(0)
    # weights [out, in] (gpt2c) and [in, out] (torch Conv1D): separate buffers per layer
    w_oi = [[(rng.standard_normal((oc, ic), dtype=np.float32) * 0.02) for _, ic, oc in shapes]
            for _ in range(L)]
    w_io = [[np.ascontiguousarray(w.T) for w in layer] for layer in w_oi]
    head = rng.standard_normal((PADDED_VOCAB, C), dtype=np.float32) * 0.02
    RowMajor, NoTrans, Trans = 101, 111, 112
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    ptr = lambda a: a.ctypes.data_as(p)  # noqa: E731
    blas.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
    blas.cblas_sgemv.argtypes = [i, i, i, i, f, p, i, p, i, f, p, i]
    out = {}
    for B in args.replay_batches:
        x = {ic: rng.standard_normal((B, ic), dtype=np.float32) for _, ic, _ in shapes}
        y = {oc: np.zeros((B, oc), dtype=np.float32) for _, _, oc in shapes}
        yh = np.zeros((B, PADDED_VOCAB), dtype=np.float32)
        for way in (("linear", "conv1d", "sgemv") if B == 1 else ("linear", "conv1d")):
            times = {name: [] for name, _, _ in shapes}
            times["lm_head"] = []
            step_ms = []
            for rep in range(args.replay_steps + 1):
                s0 = time.perf_counter()
                for layer in range(L):
                    for j, (name, ic, oc) in enumerate(shapes):
                        t0 = time.perf_counter()
                        if way == "linear":
                            blas.cblas_sgemm(RowMajor, NoTrans, Trans, B, oc, ic, 1.0, ptr(x[ic]), ic,
                                             ptr(w_oi[layer][j]), ic, 1.0, ptr(y[oc]), oc)
                        elif way == "conv1d":
                            blas.cblas_sgemm(RowMajor, NoTrans, NoTrans, B, oc, ic, 1.0, ptr(x[ic]), ic,
                                             ptr(w_io[layer][j]), oc, 1.0, ptr(y[oc]), oc)
                        else:
                            blas.cblas_sgemv(RowMajor, NoTrans, oc, ic, 1.0, ptr(w_oi[layer][j]), ic,
                                             ptr(x[ic]), 1, 1.0, ptr(y[oc]), 1)
                        if rep:
                            times[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                if way == "sgemv":
                    blas.cblas_sgemv(RowMajor, NoTrans, PADDED_VOCAB, C, 1.0, ptr(head), C, ptr(x[C]), 1, 0.0,
                                     ptr(yh), 1)
                else:
                    blas.cblas_sgemm(RowMajor, NoTrans, Trans, B, PADDED_VOCAB, C, 1.0, ptr(x[C]), C,
                                     ptr(head), C, 0.0, ptr(yh), PADDED_VOCAB)
                t1 = time.perf_counter()
                if rep:
                    times["lm_head"].append(t1 - t0)
                    step_ms.append((t1 - s0) * 1e3)
            # per op: the median over layers and steps, times the layers
            res = {name: statistics.median(v) * 1e3 * (L if name != "lm_head" else 1)
                   for name, v in times.items()}
            res["step"] = statistics.median(step_ms)
            out[f"{way}_B{B}"] = res
    shapes_out = {name: (ic, oc) for name, ic, oc in shapes}
    shapes_out["lm_head"] = (C, PADDED_VOCAB)
    print(json.dumps({"ops": out, "shapes": shapes_out, "layers": L}))


# ---- the llama.cpp worker (runs in the llama venv's python: llama-cpp-python's low-level API) ----

def llama_worker(args):
    """Load a GGUF, prefill, generate, with llama.cpp's C API through llama_cpp's ctypes bindings;
    print one JSON line with the phase timings, the way torch_worker does. B sequences decode
    together: each step is one llama_decode of a batch of B tokens, token b in sequence b (the
    batched API of llama.cpp's examples/batched). The prompt is decoded once, as sequence 0, and
    its cache copied to sequences 1..B-1 (llama_memory_seq_cp), as gpt2c copies it to its samples.
    Sampling: llama.cpp's sampler chain, top-k then a seeded draw (dist), or greedy for top-k 1."""
    t_start = time.perf_counter()
    import llama_cpp as lc

    logs = []

    @lc.llama_log_callback
    def on_log(level, text, _user):
        logs.append(text.decode(errors="replace"))

    lc.llama_log_set(on_log, ctypes.c_void_p(0))
    lc.llama_backend_init()
    system_info = lc.llama_print_system_info().decode(errors="replace").strip()
    ids = [int(x) for x in args.prompt_ids.split(",")]
    B, N, n, T = args.batch, args.tokens, len(ids), args.threads
    t_import = time.perf_counter()

    def fail(what):
        sys.exit(f"llama.cpp: {what} failed\n" + "".join(logs[-40:]))

    t0 = time.perf_counter()
    mp = lc.llama_model_default_params()
    mp.n_gpu_layers = 0
    # read into memory at load, as gpt2c reads its safetensors (no mmap faults in the first pass)
    mp.load_mode = lc.LLAMA_LOAD_MODE_NONE
    model = lc.llama_model_load_from_file(args.gguf.encode(), mp)
    if not model:
        fail("llama_model_load_from_file")
    cp = lc.llama_context_default_params()
    # B separate streams of n + N - 1 cells each (kv_unified false, llama.cpp's default: each
    # sequence attends over its own cells only); the prompt in one batch
    cp.n_seq_max = B
    cp.n_ctx = B * (n + N)
    cp.n_batch = cp.n_ubatch = max(n, B)
    cp.n_threads = cp.n_threads_batch = T
    cp.kv_unified = False
    if args.llama_kv == "f32":
        cp.type_k = cp.type_v = lc.GGML_TYPE_F32
    cp.no_perf = False
    ctx = lc.llama_init_from_model(model, cp)
    if not ctx:
        fail("llama_init_from_model")
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    if args.top_k == 1:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
    else:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(args.top_k))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(args.seed))
    batch = lc.llama_batch_init(max(n, B), 0, 1)
    mem = lc.llama_get_memory(ctx)
    n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
    t1 = time.perf_counter()

    def put(tokens, pos0, seqs, last_only):
        for i, (tok, s) in enumerate(zip(tokens, seqs)):
            batch.token[i] = tok
            batch.pos[i] = pos0 + (i if last_only else 0)
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = s
            batch.logits[i] = (not last_only) or i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        if lc.llama_decode(ctx, batch) != 0:
            fail("llama_decode")

    put(ids, 0, [0] * n, True)
    for s in range(1, B):
        lc.llama_memory_seq_cp(mem, 0, s, -1, -1)
    lc.llama_synchronize(ctx)
    t2 = time.perf_counter()
    out = [[] for _ in range(B)]
    fwd, smp = [], []
    for step in range(N):
        a = time.perf_counter()
        for b in range(B):
            out[b].append(lc.llama_sampler_sample(chain, ctx, -1 if step == 0 else b))
        c = time.perf_counter()
        smp.append(c - a)
        if step == N - 1:
            break
        put([o[-1] for o in out], n + step, range(B), False)
        lc.llama_synchronize(ctx)
        fwd.append(time.perf_counter() - c)
    t3 = time.perf_counter()
    perf = lc.llama_perf_context(ctx)
    res = {
        "import_ms": (t_import - t_start) * 1e3, "load_ms": (t1 - t0) * 1e3,
        "prompt_ms": (t2 - t1) * 1e3, "gen_ms": (t3 - t2) * 1e3, "generated": B * N,
        "fwd_ms_median": statistics.median(fwd) * 1e3, "fwd_ms_first": fwd[0] * 1e3,
        "sample_ms_median": statistics.median(smp) * 1e3,
        "fwd_ms_sum": sum(fwd) * 1e3, "sample_ms_sum": sum(smp) * 1e3,
        "perf": {"t_p_eval_ms": perf.t_p_eval_ms, "t_eval_ms": perf.t_eval_ms,
                 "n_p_eval": perf.n_p_eval, "n_eval": perf.n_eval},
        "ids": out, "ids_ok": all(0 <= t < n_vocab for o in out for t in o), "n_vocab": n_vocab,
        "n_ctx": lc.llama_n_ctx(ctx), "n_ctx_seq": lc.llama_n_ctx_seq(ctx),
        "system_info": system_info, "version": lc.__version__,
        "blas": loaded_blas(), "threads": lc.llama_n_threads(ctx), "threads_batch": lc.llama_n_threads_batch(ctx)}
    if args.llama_logs:
        res["logs"] = "".join(logs)
    lc.llama_batch_free(batch)
    lc.llama_sampler_free(chain)
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    print(json.dumps(res))


# ---- running the two sides ----

def run_gpt2c(gpt2c_bin, model_dir, cfg, threads, top_k=50, precision="fp32", prompt_file=None, cpu_isa=None):
    cmd = [str(gpt2c_bin), "sample", "--model", str(model_dir),
           *(["--prompt-file", str(prompt_file)] if prompt_file else ["--prompt", PROMPT]),
           "--num-samples", str(cfg.B), "--max-tokens", str(cfg.N), "--top-k", str(top_k),
           "--seed", str(SAMPLE_SEED), "--threads", str(threads), "--json", "--precision", precision]
    rc, out, err, use, wall = run_measured(cmd, {**thread_env(threads), **cpu_isa_env(cpu_isa)})
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({rc}):\n{err}{out}")
    m = SUMMARY_RE.search(err)
    if not m:
        raise RuntimeError(f"no summary line in gpt2c's stderr:\n{err}")
    n_prompt, generated, _secs, tok_s, prompt_ms, load_ms, route = m.groups()
    generated, tok_s = int(generated), float(tok_s)
    doc = json.loads(out)
    if generated != cfg.B * cfg.N or sum(len(s["ids"]) for s in doc["samples"]) != cfg.B * cfg.N:
        raise RuntimeError(f"gpt2c generated {generated} tokens, expected {cfg.B * cfg.N}")
    return {"gen_ms": generated / tok_s * 1e3, "prompt_ms": float(prompt_ms), "load_ms": float(load_ms),
            "generated": generated, "prompt_tokens": int(n_prompt), "samples": doc["samples"],
            "prompt_ids": doc["prompt_ids"], "route": route, "wall": wall, **use}


def run_torch(model_dir, cfg, threads, prompt_ids, mode, linear, cpu_isa=None):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--torch-worker", "--model-dir", str(model_dir),
           "--batch", str(cfg.B), "--tokens", str(cfg.N), "--threads", str(threads),
           "--prompt-ids", ",".join(map(str, prompt_ids)), "--torch-cache", mode,
           "--torch-linear", linear, "--seed", str(SAMPLE_SEED)]
    rc, out, err, use, wall = run_measured(cmd, {**thread_env(threads), **cpu_isa_env(cpu_isa)}, cwd=ROOT)
    if rc != 0:
        raise RuntimeError(f"torch worker failed ({rc}):\n{err}{out}")
    res = json.loads(out.strip().splitlines()[-1])
    if not res["ids_ok"]:
        raise RuntimeError("torch worker sampled ids outside the vocabulary")
    res.update(wall=wall, **use)
    return res


def prompt_ids_of(gpt2c_bin, text):
    out = subprocess.run([str(gpt2c_bin), "tokenize", "-", "--format", "text"], input=text.encode(),
                         capture_output=True, check=True).stdout.decode()
    return [int(x) for x in out.split()]


def make_model_dir(model, directory):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--make-model-worker", "--model", model,
           "--model-dir", str(directory)]
    subprocess.run(cmd, check=True, cwd=ROOT)


# ---- the memory-bandwidth bound ----

def weight_bytes(model, vocab_rows):
    """Bytes of the weights a decoding step reads: every block parameter, ln_f, and the LM head
    (vocab_rows x C); the token and position embedding rows read are negligible."""
    L, _, C = PRESETS[model]
    per_layer = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    return 4 * (L * per_layer + 2 * C + vocab_rows * C)


def kv_bytes_per_step(model, cfg, n_prompt):
    """Average bytes of keys and values a one-token step reads (attention over positions
    0..pos, pos = n_prompt .. n_prompt + N - 2), all samples."""
    L, _, C = PRESETS[model]
    avg_pos = n_prompt + (cfg.N - 2) / 2 + 1
    return 4 * 2 * L * C * avg_pos * cfg.B


def measure_bandwidth(threads, size_mb, tmp):
    src = ROOT / "bench/membw.c"
    exe = Path(tmp) / "membw"
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler"
    r = subprocess.run([cc, "-O3", "-march=native", "-ffast-math", "-fopenmp", str(src), "-o", str(exe)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr
    res = {}
    for t in sorted({1, threads}):
        out = subprocess.run([str(exe), str(size_mb), "9"], capture_output=True, text=True,
                             env=thread_env(t), check=True).stdout
        res[t] = json.loads(out)
    return res, None


def run_replay(model, threads, blas_lib, batches, cpu_isa=None):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--replay-worker", "--model", model,
           "--blas-lib", blas_lib, "--replay-batches", ",".join(map(str, batches))]
    rc, out, err, _, _ = run_measured(cmd, {**thread_env(threads), **cpu_isa_env(cpu_isa)}, cwd=ROOT)
    if rc != 0:
        raise RuntimeError(f"replay worker failed ({rc}):\n{err}{out}")
    return json.loads(out.strip().splitlines()[-1])


# ---- llama.cpp: the build, the GGUF files, the runs ----

LLAMA_CONFIGS = ["1x128@16", "1x16@512", "8x128@16"]
LLAMA_QUICK_CONFIGS = ["1x32@16", "1x4@128", "4x16@16"]
LLAMA_SIDES = [("gpt2c fp32", "gpt2c", "fp32"), ("gpt2c bf16", "gpt2c", "bf16"),
               ("llama.cpp f32", "llama", "f32"), ("llama.cpp f16", "llama", "f16")]
PROMPT_TEXT = ROOT / "data/tinyshakespeare/input.txt"


def llama_build_isa(cpu_isa):
    """Which llama.cpp build stands for --cpu-isa: None, the native one (-march=native), when
    there is no cap or when the cap is the machine's own top level (amx on an AMX CPU)."""
    if cpu_isa is None or (cpu_isa == "amx" and "amx_tile" in cpu_flags()):
        return None
    return cpu_isa


def prompt_of_length(gpt2c_bin, n, directory):
    """A text that gpt2c tokenizes into exactly n tokens, written to DIR/prompt-N.txt: the first n
    tokens of Tiny Shakespeare from its start (or a later line, where cutting the start there does
    not tokenize back to the same n ids), detokenized. Returns (path, ids); llama.cpp is given
    these ids, not the text."""
    import array
    lines = PROMPT_TEXT.read_text().splitlines(keepends=True)
    path = Path(directory) / f"prompt-{n}.txt"
    for start in range(64):
        text = "".join(lines[start:start + 4 * n])
        ids = prompt_ids_of(gpt2c_bin, text)[:n]
        u16 = Path(directory) / f"prompt-{n}.u16"
        u16.write_bytes(array.array("H", ids).tobytes())
        subprocess.run([str(gpt2c_bin), "detokenize", str(u16), "-o", str(path)], check=True)
        if len(ids) == n and prompt_ids_of(gpt2c_bin, path.read_text()) == ids:
            return path, ids
    sys.exit(f"no {n}-token prompt from {PROMPT_TEXT} tokenizes back to itself")


# convert_hf_to_gguf.py run under Debian's torch 1.13: its dtype tables name torch 2.x's float8 (and
# uint16..64) dtypes, which 1.13 lacks; they are only looked up for checkpoints in those types, so
# placeholders stand in for them (an fp32 checkpoint never meets one). Then the script runs as itself.
CONVERT_SHIM = """
import pathlib, runpy, sys, torch
for name in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float8_e4m3fnuz", "float8_e5m2fnuz",
             "uint16", "uint32", "uint64"):
    if not hasattr(torch, name):
        setattr(torch, name, type("missing_torch_" + name, (), {})())
sys.argv = sys.argv[1:]
sys.path.insert(0, str(pathlib.Path(sys.argv[0]).parent))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def convert_gguf(py, llama_src, model_dir, tmp):
    """The model as GGUF, f32 and f16, by llama.cpp's own convert_hf_to_gguf.py (CONVERT_SHIM). It
    reads the tokenizer too (transformers' GPT-2 tokenizer: vocab.json and merges.txt, which are
    gpt2c's data/gpt2/encoder.json and vocab.bpe), so it runs on a directory of links to the
    model's files plus those two. Returns ({outtype: path}, {outtype: seconds})."""
    conv = Path(tmp) / "hf-for-gguf"
    conv.mkdir(exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        if not (conv / f).exists():
            (conv / f).symlink_to(Path(model_dir).resolve() / f)
    for src, dst in (("encoder.json", "vocab.json"), ("vocab.bpe", "merges.txt")):
        shutil.copyfile(ROOT / "data/gpt2" / src, conv / dst)
    paths, secs = {}, {}
    for outtype in ("f32", "f16"):
        out = Path(tmp) / f"model-{outtype}.gguf"
        t0 = time.monotonic()
        r = subprocess.run([str(py), "-c", CONVERT_SHIM, str(Path(llama_src) / "convert_hf_to_gguf.py"), str(conv),
                            "--outtype", outtype, "--outfile", str(out)], capture_output=True, text=True,
                           env=thread_env(os.cpu_count() or 1))
        if r.returncode != 0:
            raise RuntimeError(f"convert_hf_to_gguf.py --outtype {outtype} failed ({r.returncode}):\n"
                               f"{r.stderr[-4000:]}{r.stdout[-2000:]}")
        paths[outtype], secs[outtype] = out, time.monotonic() - t0
    return paths, secs


def gguf_types(py, gguf_path, llama_src):
    """{tensor type: [count, bytes]} of a GGUF (gguf-py from the same llama.cpp source)."""
    code = ("import sys, json, collections; sys.path.insert(0, sys.argv[2]); import gguf\n"
            "r = gguf.GGUFReader(sys.argv[1]); c = collections.defaultdict(lambda: [0, 0])\n"
            "for t in r.tensors:\n"
            "    k = t.tensor_type.name + (' (token_embd)' if t.name == 'token_embd.weight' else '')\n"
            "    c[k][0] += 1; c[k][1] += int(t.n_bytes)\n"
            "print(json.dumps({'types': c, 'names': [t.name for t in r.tensors]}))")
    r = subprocess.run([str(py), "-c", code, str(gguf_path), str(Path(llama_src) / "gguf-py")],
                       capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {"types": {}, "names": [], "error": r.stderr[-500:]}


def run_llama(py, gguf_path, cfg, threads, prompt_ids, top_k=50, kv="default", logs=False):
    cmd = [str(py), str(Path(__file__).resolve()), "--llama-worker", "--gguf", str(gguf_path),
           "--batch", str(cfg.B), "--tokens", str(cfg.N), "--threads", str(threads),
           "--prompt-ids", ",".join(map(str, prompt_ids)), "--top-k", str(top_k), "--seed", str(SAMPLE_SEED),
           "--llama-kv", kv] + (["--llama-logs"] if logs else [])
    rc, out, err, use, wall = run_measured(cmd, thread_env(threads), cwd=ROOT)
    if rc != 0:
        raise RuntimeError(f"llama.cpp worker failed ({rc}):\n{err[-6000:]}{out[-2000:]}")
    res = json.loads(out.strip().splitlines()[-1])
    if not res["ids_ok"] or sum(len(o) for o in res["ids"]) != cfg.B * cfg.N:
        raise RuntimeError("llama.cpp worker: wrong number of tokens or ids outside the vocabulary")
    res.update(wall=wall, **use)
    return res


def llama_log_facts(logs):
    """The lines of llama.cpp's load log that say how it runs the model."""
    keys = ("file type", "model buffer size", "preferred buffer type", "n_ctx_seq ", "flash_attn",
            "Flash Attention", "kv_unified", "llama_kv_cache: size", "compute buffer size", "graph: nodes",
            "copying KV buffer")
    seen, out = set(), []
    for line in logs.splitlines():
        line = " ".join(line.split())
        if any(k in line for k in keys) and line not in seen and "n_ctx_train" not in line:
            seen.add(line)
            out.append(line)
    return out


def greedy_agree(a, b):
    """(tokens equal, total, first index that differs or None) of two lists of id lists."""
    eq = tot = 0
    first = None
    for x, y in zip(a, b):
        for i, (p, q) in enumerate(zip(x, y)):
            tot += 1
            if p == q:
                eq += 1
            elif first is None:
                first = i
    return eq, tot, first


def llama_setup(args):
    """The llama.cpp build for --cpu-isa (installed if missing) and what the loaded library says
    it is: (venv, llama.cpp source dir, {version, system_info})."""
    venv, llama_src = ensure_llama_venv(ROOT, llama_build_isa(args.cpu_isa), log=lambda m: print(m, flush=True))
    code = ("import json, llama_cpp as lc; lc.llama_backend_init(); print(json.dumps({'version': lc.__version__, "
            "'system_info': lc.llama_print_system_info().decode(errors='replace').strip()}))")
    r = subprocess.run([str(venv / "bin/python"), "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"llama_cpp does not load from {venv}:\n{r.stderr[-3000:]}")
    return venv, llama_src, json.loads(r.stdout.strip().splitlines()[-1])


def llama_part(args, gpt2c_bin, model_dir, tmp, load_monitor_cls, setup):
    """Convert, check, then the rounds; returns what the report needs."""
    build_isa = llama_build_isa(args.cpu_isa)
    venv, llama_src, _ = setup
    print("## llama.cpp")
    py = venv / "bin/python"
    ggufs, conv_s = convert_gguf(py, llama_src, model_dir, tmp)
    info = {"venv": venv.name, "cmake_args": llama_cmake_args(build_isa), "build_isa": build_isa,
            "ggufs": ggufs, "conv_s": conv_s, "gguf_types": {k: gguf_types(py, p, llama_src) for k, p in ggufs.items()}}
    for k, p in ggufs.items():
        types = ", ".join(f"{n} {t} ({b / 1e6:.0f} MB)" for t, (n, b) in sorted(info["gguf_types"][k]["types"].items()))
        print(f"gguf {k}:  {p.stat().st_size / 1e6:.0f} MB by convert_hf_to_gguf.py --outtype {k} "
              f"({conv_s[k]:.1f} s); tensors: {types}")

    # the check: greedy continuations (top-k 1) of the 8-token prompt, 2 sequences decoding together
    chk_tokens = 20
    g32 = run_gpt2c(gpt2c_bin, model_dir, Config(f"2x{chk_tokens}"), args.threads, top_k=1, cpu_isa=args.cpu_isa)
    g16 = run_gpt2c(gpt2c_bin, model_dir, Config(f"2x{chk_tokens}"), args.threads, top_k=1, precision="bf16",
                    cpu_isa=args.cpu_isa)
    pids = g32["prompt_ids"]
    checks = [("f32 GGUF, f32 KV cache", ggufs["f32"], "f32", g32, "fp32"),
              ("f32 GGUF, llama.cpp's default KV cache (as timed)", ggufs["f32"], "default", g32, "fp32"),
              ("f16 GGUF, default KV cache", ggufs["f16"], "default", g16, "bf16")]
    info["checks"] = []
    for i, (what, path, kv, g, gprec) in enumerate(checks):
        r = run_llama(py, path, Config(f"2x{chk_tokens}"), args.threads, pids, top_k=1, kv=kv, logs=(i == 1))
        if i == 1:
            info["system_info"], info["version"] = r["system_info"], r["version"]
            info["facts"] = llama_log_facts(r.get("logs", ""))
            info["threads"] = (r["threads"], r["threads_batch"])
        eq, tot, first = greedy_agree([s["ids"] for s in g["samples"]], r["ids"])
        info["checks"].append((what, gprec, eq, tot, first))
    print(f"llama.cpp: llama-cpp-python {info['version']}, n_threads={info['threads'][0]} "
          f"n_threads_batch={info['threads'][1]}; how it runs GPT-2 (its load log, f32 GGUF, 2 sequences):")
    for line in info["facts"]:
        print(f"  log: {line}")
    for what, gprec, eq, tot, first in info["checks"]:
        bad = what.startswith("f32 GGUF, f32") and eq != tot
        print(f"check: greedy 2 x {chk_tokens} tokens (2 sequences in one batch), llama.cpp {what} vs gpt2c "
              f"{gprec}: {eq}/{tot} equal" + ("" if first is None else f" (first difference at token {first})")
              + (" -- WARNING: the two models disagree" if bad else ""))
    print()

    prompts = {}
    for cfg in args.llama_configs:
        if cfg.P not in prompts:
            prompts[cfg.P] = prompt_of_length(gpt2c_bin, cfg.P, tmp)
    runs = {c.name: {name: [] for name, _, _ in LLAMA_SIDES} for c in args.llama_configs}
    load = load_monitor_cls()
    for rnd in range(args.rounds):
        for cfg in args.llama_configs:
            t0 = time.monotonic()
            pfile, pids = prompts[cfg.P]
            order = LLAMA_SIDES if rnd % 2 == 0 else LLAMA_SIDES[::-1]
            for name, kind, prec in order:
                if kind == "gpt2c":
                    r = run_gpt2c(gpt2c_bin, model_dir, cfg, args.threads, precision=prec, prompt_file=pfile,
                                  cpu_isa=args.cpu_isa)
                    if r["prompt_ids"] != pids:
                        raise RuntimeError(f"gpt2c's prompt ids differ from those given to llama.cpp ({cfg.name})")
                else:
                    r = run_llama(py, ggufs[prec], cfg, args.threads, pids, kv=args.llama_kv)
                runs[cfg.name][name].append(r)
            tok = cfg.B * cfg.N
            print(f"round {rnd + 1}/{args.rounds} {cfg.name}: "
                  + ", ".join(f"{name} {tok / runs[cfg.name][name][-1]['gen_ms'] * 1e3:.1f}"
                              for name, _, _ in LLAMA_SIDES)
                  + f" tok/s ({time.monotonic() - t0:.0f} s)", flush=True)
    info["other_load"] = load.other_cpus()
    info["runs"], info["prompts"] = runs, {p: ids for p, (_, ids) in prompts.items()}
    print()
    return info


def llama_summary(cfg, side_runs):
    gen = med(side_runs, "gen_ms")
    pr = med(side_runs, "prompt_ms")
    return {"tok_s": cfg.B * cfg.N / (gen / 1e3), "step_ms": gen / (cfg.N - 1), "prompt_ms": pr,
            "prefill_tok_s": cfg.P / (pr / 1e3), "load_ms": med(side_runs, "load_ms"),
            "rss": max(r["rss"] for r in side_runs)}


def print_llama_report(args, info):
    runs = info["runs"]
    print("## llama.cpp runs (generation tokens/s, prompt ms, load ms of each run)")
    for cfg in args.llama_configs:
        print(f"{cfg.name}:")
        for name, kind, _ in LLAMA_SIDES:
            for i, r in enumerate(runs[cfg.name][name]):
                if kind == "gpt2c":
                    extra = f"; route: {r['route']}"
                else:
                    p = r["perf"]
                    extra = (f"; llama_decode median {r['fwd_ms_median']:.2f} ms (first {r['fwd_ms_first']:.1f}), "
                             f"sampling median {r['sample_ms_median']:.2f} ms per step "
                             f"(sum {r['sample_ms_sum']:.0f} ms); llama.cpp's timers: batches of several "
                             f"tokens {p['t_p_eval_ms']:.0f} ms / {p['n_p_eval']} tokens, of one token "
                             f"{p['t_eval_ms']:.0f} ms / {p['n_eval']}")
                print(f"  {name} round {i + 1}: {cfg.B * cfg.N / (r['gen_ms'] / 1e3):.1f} tok/s "
                      f"({r['gen_ms']:.0f} ms), prompt {r['prompt_ms']:.1f} ms, load {r['load_ms']:.0f} ms; "
                      f"process {r['wall']:.1f} s wall, {r['user_s']:.1f} s user, peak RSS "
                      f"{r['rss'] / 2**30:.2f} GiB{extra}")
    print()
    S = {c.name: {name: llama_summary(c, runs[c.name][name]) for name, _, _ in LLAMA_SIDES}
         for c in args.llama_configs}
    names = [n for n, _, _ in LLAMA_SIDES]
    print("## Results: gpt2c and llama.cpp (markdown)")
    print()
    isa = f"--cpu-isa {args.cpu_isa}" if args.cpu_isa else "no ISA cap"
    print(f"Decoding speed of `gpt2c sample` (fp32, `--precision bf16`) and llama.cpp (llama-cpp-python "
          f"{info['version']}, {info['venv']}; f32 and f16 GGUF from llama.cpp's convert_hf_to_gguf.py) on the "
          f"same weights ({args.model}, {isa}, {args.threads} threads, top-k 50; medians over {args.rounds} "
          "alternating runs each; tok/s = all B sequences together, the sampling included; P = prompt tokens, "
          "prefill tok/s = P / prompt time; model load excluded):")
    print()
    print("| config | " + " | ".join(f"{n} tok/s" for n in names)
          + " | gpt2c bf16 / llama.cpp f16 | gpt2c fp32 / llama.cpp f32 |")
    print("|---|" + "---:|" * (len(names) + 2))
    for c in args.llama_configs:
        s = S[c.name]
        print(f"| {c.name} | " + " | ".join(f"{s[n]['tok_s']:.1f}" for n in names)
              + f" | {s['gpt2c bf16']['tok_s'] / s['llama.cpp f16']['tok_s']:.2f}x"
              + f" | {s['gpt2c fp32']['tok_s'] / s['llama.cpp f32']['tok_s']:.2f}x |")
    print()
    print("| config | " + " | ".join(f"{n} ms/step" for n in names) + " | "
          + " | ".join(f"{n} prefill tok/s" for n in names) + " |")
    print("|---|" + "---:|" * (2 * len(names)))
    for c in args.llama_configs:
        s = S[c.name]
        print(f"| {c.name} | " + " | ".join(f"{s[n]['step_ms']:.2f}" for n in names) + " | "
              + " | ".join(f"{s[n]['prefill_tok_s']:.0f}" for n in names) + " |")
    print()
    for name, kind, _ in LLAMA_SIDES:
        if kind == "gpt2c":
            routes = sorted({r["route"] for c in args.llama_configs for r in runs[c.name][name]})
            print(f"{name} route: {'; '.join(routes)}")
    b1 = [c for c in args.llama_configs if c.B == 1]
    for c in b1:
        s = S[c.name]
        r = s["gpt2c bf16"]["tok_s"] / s["llama.cpp f16"]["tok_s"]
        print(f"batch 1, {c.name}: gpt2c bf16 / llama.cpp f16 = {r:.2f}x "
              + ("(goal gpt2c bf16 >= llama.cpp f16: met)" if r >= 1 else
                 "(goal gpt2c bf16 >= llama.cpp f16: NOT met)"))
    from tokenizer_bench import report_load
    report_load(info["other_load"], during="the llama.cpp runs")
    print()


# ---- the report ----

def print_header(args, gpt2c_bin, build_dir, llama=None):
    from tokenizer_bench import build_flags, cpu_model, git_revision
    cpu = lscpu()
    L, NH, C = PRESETS[args.model]
    peers = [*([] if args.no_torch else ["PyTorch with a KV cache"]), *([] if args.no_llama else ["llama.cpp"])]
    print(f"# gpt2c sampling benchmark (CPU): gpt2c sample vs {' and '.join(peers)}")
    print(f"date:      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"cpu:       {cpu.get('Model name') or cpu_model()}; {cpu.get('CPU(s)', os.cpu_count())} "
          f"CPUs ({cpu.get('Socket(s)', '?')} socket x {cpu.get('Core(s) per socket', '?')} cores x "
          f"{cpu.get('Thread(s) per core', '?')} threads), usable by this process: "
          f"{len(os.sched_getaffinity(0))}"
          + (f", hypervisor {cpu['Hypervisor vendor']}" if cpu.get("Hypervisor vendor") else "")
          + (f"; caches L2 {cpu.get('L2 cache')}, L3 {cpu.get('L3 cache')}" if cpu.get("L3 cache") else ""))
    print(f"memory:    {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB")
    print(f"os:        {platform.system()} {platform.release()}")
    print(f"python:    {platform.python_version()}  torch {importlib.metadata.version('torch')} "
          f"(numpy {importlib.metadata.version('numpy')})")
    print(f"gpt2c:     {git_revision()}  build {build_dir}  C_FLAGS: {build_flags(build_dir)}")
    print(f"gpt2c libs: {', '.join(gpt2c_blas(gpt2c_bin)) or 'unknown'}")
    env = {**thread_env(args.threads), **cpu_isa_env(args.cpu_isa)}
    info = subprocess.run([str(gpt2c_bin), "info"], capture_output=True, text=True, env=env).stdout
    print("gpt2c info: " + "; ".join(ln.strip() for ln in info.splitlines()
                                     if ln.split(":")[0] in ("cpu instruction sets", "fp32", "bf16", "kernels")))
    print("isa cap:   " + (f"--cpu-isa {args.cpu_isa}: "
                           + " ".join(f"{k}={v}" for k, v in cpu_isa_env(args.cpu_isa).items())
                           + ("; llama.cpp: a build for that level (below)" if not args.no_llama else "")
                           if args.cpu_isa else "none (every side takes the machine's best)"))
    print(f"model:     {args.model} ({L} layers, {NH} heads, {C} wide, {N_POSITIONS} positions), "
          f"random GPT-2 init (seed {MODEL_SEED}), fp32 Hugging Face dir read by both")
    if not args.no_torch:
        print(f"settings:  threads={args.threads} rounds={args.rounds} prompt {PROMPT!r} top-k 50; "
              f"gpt2c --precision {args.precision} (torch fp32); "
              f"torch: KV cache {args.torch_cache}, linear layers {args.torch_linear}"
              + (f" (and the variants {', '.join(v[6:] for v, _, _ in variants(args))}, --compare)"
                 if args.compare else "")
              + f"; configs {' '.join(c.name for c in args.configs)} (B samples x N new tokens)")
    if llama:
        venv, _, linfo = llama
        build_isa = llama_build_isa(args.cpu_isa)
        print(f"llama.cpp: llama-cpp-python {linfo['version']} (its vendored llama.cpp, built from source) in "
              f"{venv.name}: CMAKE_ARGS=\"{llama_cmake_args(build_isa)}\""
              + (f" (the native build is the {args.cpu_isa} level here)" if args.cpu_isa and build_isa is None else ""))
        print(f"ggml cpu:  {linfo['system_info']}  (llama_print_system_info of the loaded library)")
        print(f"llama runs: threads={args.threads} (n_threads = n_threads_batch; gpt2c --threads) "
              f"rounds={args.rounds} top-k 50; sides {', '.join(n for n, _, _ in LLAMA_SIDES)}; "
              f"KV cache {'f16 (llama.cpp default)' if args.llama_kv == 'default' else 'f32'}; prompts: the "
              f"start of Tiny Shakespeare cut to P tokens; configs "
              f"{', '.join(c.name for c in args.llama_configs)} (B sequences x N new tokens, P prompt tokens)")
    print()


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def summarize(cfg, g_runs, t_runs):
    res = {"cfg": cfg}
    for side, runs in (("g", g_runs), ("t", t_runs)):
        gen = med(runs, "gen_ms")
        res[side] = {"gen_ms": gen, "tok_s": cfg.B * cfg.N / (gen / 1e3), "step_ms": gen / (cfg.N - 1),
                     "prompt_ms": med(runs, "prompt_ms"), "load_ms": med(runs, "load_ms"),
                     "e2e_ms": statistics.median(r["prompt_ms"] + r["gen_ms"] for r in runs),
                     "rss": max(r["rss"] for r in runs), "wall": med(runs, "wall")}
    res["ratio"] = res["g"]["tok_s"] / res["t"]["tok_s"]
    return res


def variants(args):
    """The extra torch sides of --compare: (name, cache, linear), each changing one choice."""
    other_cache = "concat" if args.torch_cache == "prealloc" else "prealloc"
    other_linear = "conv1d" if args.torch_linear == "linear" else "linear"
    return [(f"torch cache={other_cache}", other_cache, args.torch_linear),
            (f"torch linear={other_linear}", args.torch_cache, other_linear)]


def print_details(results, runs):
    print("## Runs (generation tokens/s, prompt ms, load ms of each run)")
    for res in results:
        cfg = res["cfg"]
        print(f"{cfg.name}:")
        for side in ("gpt2c", "torch"):
            for i, r in enumerate(runs[cfg.name][side]):
                extra = f"; route: {r['route']}" if side == "gpt2c" else ""
                if side == "torch":
                    extra = (f"; forward median {r['fwd_ms_median']:.1f} ms (first {r['fwd_ms_first']:.1f}),"
                             f" sampling median {r['sample_ms_median']:.2f} ms per step;"
                             f" import {r['import_ms']:.0f} ms")
                print(f"  {side} round {i + 1}: {cfg.B * cfg.N / (r['gen_ms'] / 1e3):.1f} tok/s "
                      f"({r['gen_ms']:.0f} ms), prompt {r['prompt_ms']:.0f} ms, load {r['load_ms']:.0f} ms; "
                      f"process {r['wall']:.1f} s wall, {r['user_s']:.1f} s user, peak RSS "
                      f"{r['rss'] / 2**30:.2f} GiB{extra}")
        for side, c in runs[cfg.name].items():
            if side in ("gpt2c", "torch"):
                continue
            gen = med(c, "gen_ms")
            print(f"  {side} ({len(c)} runs): {cfg.B * cfg.N / (gen / 1e3):.1f} tok/s, "
                  f"{gen / (cfg.N - 1):.1f} ms per step, prefill {med(c, 'prompt_ms'):.0f} ms "
                  f"(torch: {res['t']['tok_s']:.1f} tok/s, {res['t']['step_ms']:.1f} ms per step)")
    print()


def print_table(results):
    print("| config | gpt2c tok/s | torch tok/s | gpt2c / torch | gpt2c ms/step | torch ms/step | "
          "gpt2c prefill ms | torch prefill ms | gpt2c end-to-end ms | torch end-to-end ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        g, t = r["g"], r["t"]
        print(f"| {r['cfg'].name} | {g['tok_s']:.1f} | {t['tok_s']:.1f} | {r['ratio']:.2f}x | "
              f"{g['step_ms']:.1f} | {t['step_ms']:.1f} | {g['prompt_ms']:.0f} | {t['prompt_ms']:.0f} | "
              f"{g['e2e_ms']:.0f} | {t['e2e_ms']:.0f} |")
    print()


def print_roofline(args, results, bw, replay, n_prompt):
    print("## Where the time goes: the memory-bandwidth bound")
    print()
    read = bw[args.threads]["read_median"]
    for t, r in sorted(bw.items()):
        print(f"memory bandwidth, {r['size_mb']:.0f} MB buffer, {t} thread{'s' if t > 1 else ''}: "
              f"read {r['read_median']:.1f} GB/s (best {r['read_best']:.1f}), "
              f"copy {r['copy_median']:.1f} GB/s (best {r['copy_best']:.1f}; read + write bytes)")
    wg, wt = weight_bytes(args.model, PADDED_VOCAB), weight_bytes(args.model, VOCAB)
    print(f"weights read per step: gpt2c {wg / 1e6:.0f} MB (LM head {PADDED_VOCAB} rows), "
          f"torch {wt / 1e6:.0f} MB ({VOCAB} rows); bound = (weights + KV cache bytes) / "
          f"{read:.1f} GB/s (the {args.threads}-thread read median)")
    print()
    L = replay["layers"] if replay else 0
    if replay:
        names = {"linear": "W[out,in]^T (gpt2c; torch F.linear)", "conv1d": "W[in,out] (HF Conv1D addmm)",
                 "sgemv": "sgemv"}
        ways = list(replay["ops"])
        label = lambda w: f"{names[w.rsplit('_B', 1)[0]]} B={w.rsplit('_B', 1)[1]}"  # noqa: E731
        print(f"One decoding step's matmuls replayed through OpenBLAS ({args.threads} threads): ms per step "
              f"(the {L} layers of an op summed) and GB/s = weight bytes / time; sgemm unless named:")
        print()
        print("| op (in -> out) | MB | " + " | ".join(f"{label(w)}" for w in ways) + " |")
        print("|---|---:|" + "---:|" * len(ways))
        for op, (ic, oc) in replay["shapes"].items():
            mult = 1 if op == "lm_head" else L
            mb = 4 * ic * oc * mult / 1e6
            ms = [replay["ops"][w][op] for w in ways]
            print(f"| {op} ({ic} -> {oc}){'' if op == 'lm_head' else f' x{L}'} | {mb:.0f} | "
                  + " | ".join(f"{m:.2f} ms, {mb / m:.1f} GB/s" for m in ms) + " |")
        total_mb = sum(4 * ic * oc * (1 if op == "lm_head" else L)
                       for op, (ic, oc) in replay["shapes"].items()) / 1e6
        steps = [replay["ops"][w]["step"] for w in ways]
        print(f"| whole step, in order | {total_mb:.0f} | "
              + " | ".join(f"**{m:.2f} ms, {total_mb / m:.1f} GB/s**" for m in steps) + " |")
        print()
    print("| config | bytes/step (weights + KV) | bound ms/step | gpt2c ms/step | gpt2c: bound / actual "
          "| gpt2c's matmuls alone (replay) | torch ms/step | torch: bound / actual |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        cfg = r["cfg"]
        kvb = kv_bytes_per_step(args.model, cfg, n_prompt)
        bg, bt = (wg + kvb) / (read * 1e9) * 1e3, (wt + kvb) / (read * 1e9) * 1e3
        mm = (replay or {}).get("ops", {}).get(f"linear_B{cfg.B}")
        mm_s = f"{mm['step']:.1f} ms ({100 * mm['step'] / r['g']['step_ms']:.0f}%)" if mm else "-"
        print(f"| {cfg.name} | {(wg + kvb) / 1e6:.0f} MB | {bg:.1f} | {r['g']['step_ms']:.1f} | "
              f"{100 * bg / r['g']['step_ms']:.0f}% | {mm_s} | {r['t']['step_ms']:.1f} | "
              f"{100 * bt / r['t']['step_ms']:.0f}% |")
    print()


def main():
    ap = bench_parser(__doc__)
    ap.add_argument("--config", dest="configs", type=Config, action="append",
                    help="SAMPLESxTOKENS, e.g. 5x30 (repeatable; default: " + " ".join(DEFAULT_CONFIGS) + ")")
    ap.add_argument("--model", default="d12", choices=sorted(PRESETS), help="model shape (default d12)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each side per config (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for both (default: the number of CPUs)")
    ap.add_argument("--torch-cache", choices=("prealloc", "concat"), default="prealloc",
                    help="the PyTorch KV cache (default prealloc)")
    ap.add_argument("--torch-linear", choices=("linear", "conv1d"), default="linear",
                    help="the PyTorch linear layers: F.linear on W [out, in] (default) or Hugging Face's "
                    "Conv1D addmm on W [in, out]")
    ap.add_argument("--compare", action="store_true",
                    help="also run torch with the other KV cache and with the other linear layout, in "
                    "every round (the evidence for the defaults)")
    ap.add_argument("--no-roofline", action="store_true", help="skip the bandwidth and matmul replay part")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="gpt2c sample --precision in the PyTorch part (default fp32). PyTorch stays fp32: "
                    "torch 1.13's CPU autocast does not cover the KV model's LayerNorm. The bandwidth part "
                    "assumes fp32 weights, so bf16 implies --no-roofline")
    ap.add_argument("--cpu-isa", choices=list(CPU_ISA_CAPS),
                    help="run as on a CPU with only this instruction set: GPT2C_CPU_ISA for gpt2c, the "
                    "matching caps for PyTorch (bench_common.CPU_ISA_CAPS), and a llama.cpp built for that "
                    "level (.venv-llama-LEVEL)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch part")
    ap.add_argument("--no-llama", action="store_true", help="skip the llama.cpp part")
    ap.add_argument("--llama-config", dest="llama_configs", type=Config, action="append",
                    help="SAMPLESxTOKENS@PROMPT for the llama.cpp part (repeatable; default: "
                    + " ".join(LLAMA_CONFIGS) + ")")
    ap.add_argument("--llama-kv", choices=("default", "f32"), default="default",
                    help="llama.cpp's KV cache in the timed runs: its default (f16) or f32 like gpt2c's")
    ap.add_argument("--quick", action="store_true", help="one round of d6, small configs (a smoke run)")
    # workers, run by the benchmark itself
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--check-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--replay-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--make-model-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--llama-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--llama-logs", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gguf", help=argparse.SUPPRESS)
    ap.add_argument("--top-k", type=int, default=50, help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tokens", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--prompt-ids", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=SAMPLE_SEED, help=argparse.SUPPRESS)
    ap.add_argument("--blas-lib", help=argparse.SUPPRESS)
    ap.add_argument("--replay-batches", default="1", help=argparse.SUPPRESS)
    ap.add_argument("--replay-steps", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        return torch_worker(args)
    if args.check_worker:
        return check_worker(args)
    if args.make_model_worker:
        return make_model_worker(args)
    if args.llama_worker:
        return llama_worker(args)
    if args.replay_worker:
        args.replay_batches = [int(b) for b in args.replay_batches.split(",")]
        return replay_worker(args)

    if args.precision == "bf16":
        args.no_roofline = True
    if args.quick:
        args.model = "d6" if args.model == "d12" else args.model
        args.configs = args.configs or [Config("1x8"), Config("3x16")]
        args.llama_configs = args.llama_configs or [Config(c) for c in LLAMA_QUICK_CONFIGS]
        args.rounds = 1
    args.configs = args.configs or [Config(s) for s in DEFAULT_CONFIGS]
    args.llama_configs = args.llama_configs or [Config(s) for s in LLAMA_CONFIGS]
    if args.rounds < 1 or args.threads < 1:
        sys.exit("--rounds and --threads must be at least 1")
    if args.no_torch and args.no_llama:
        sys.exit("--no-torch and --no-llama leave nothing to run")
    for cfg in args.llama_configs:
        if cfg.P is None or cfg.P + cfg.N > N_POSITIONS:
            sys.exit(f"--llama-config {cfg.name}: want SAMPLESxTOKENS@PROMPT, prompt + tokens within "
                     f"{N_POSITIONS} positions")
    build_dir, gpt2c_bin = find_gpt2c(args.build_dir, ROOT)
    prompt_ids = prompt_ids_of(gpt2c_bin, PROMPT)
    for cfg in args.configs:
        if len(prompt_ids) + cfg.N - 1 > N_POSITIONS:
            sys.exit(f"{cfg.name}: prompt + tokens exceed the {N_POSITIONS} positions (no sliding window "
                     "in the torch side)")

    from tokenizer_bench import LoadMonitor, report_load
    llama = None if args.no_llama else llama_setup(args)
    print_header(args, gpt2c_bin, build_dir, llama)
    torch_sides = {"torch": (args.torch_cache, args.torch_linear)}
    if args.compare:
        torch_sides.update({name: (cache, linear) for name, cache, linear in variants(args)})
    sides = ["gpt2c", *torch_sides]
    runs = {c.name: {s: [] for s in sides} for c in args.configs}
    torch_info = llama_info = None
    with tempfile.TemporaryDirectory(prefix="gpt2c-sample-bench-") as tmp:
        model_dir = Path(tmp) / "model"
        make_model_dir(args.model, model_dir)
        size = (model_dir / "model.safetensors").stat().st_size
        print(f"model dir: {model_dir.name}/ ({size / 1e6:.0f} MB safetensors)"
              + ("" if args.no_torch else f"; prompt ids {prompt_ids}"))
        print()

        if not args.no_torch:
            print("## PyTorch")
            # the check: torch's cache against recomputation; greedy continuations of both
            check_tokens = 20
            rc, out, err, _, _ = run_measured(
                [sys.executable, str(Path(__file__).resolve()), "--check-worker", "--model-dir", str(model_dir),
                 "--threads", str(args.threads), "--prompt-ids", ",".join(map(str, prompt_ids)),
                 "--tokens", str(check_tokens), "--torch-linear", args.torch_linear],
                {**thread_env(args.threads), **cpu_isa_env(args.cpu_isa)}, cwd=ROOT)
            if rc != 0:
                raise RuntimeError(f"check worker failed ({rc}):\n{err}{out}")
            chk = json.loads(out.strip().splitlines()[-1])
            torch_version = chk["torch"]
            greedy = run_gpt2c(gpt2c_bin, model_dir, Config(f"2x{check_tokens}"), args.threads, top_k=1,
                               cpu_isa=args.cpu_isa)
            g_ids = [s["ids"] for s in greedy["samples"]]
            agree = sum(a == b for ga, ta in zip(g_ids, chk["greedy"]) for a, b in zip(ga, ta))
            print(f"check: torch KV-cache logits vs full recomputation after 16 sampled steps, max |diff| "
                  f"{chk['maxdiff_prealloc']:.2e} (prealloc cache), {chk['maxdiff_concat']:.2e} (concat); "
                  f"greedy 2 x {check_tokens} tokens: {agree}/{2 * check_tokens} equal to gpt2c's"
                  + ("" if agree == 2 * check_tokens else " -- WARNING: the two models disagree"))
            if greedy["prompt_ids"] != prompt_ids:
                print(f"WARNING: gpt2c's prompt ids {greedy['prompt_ids']} differ from {prompt_ids}")
            print()

            load = LoadMonitor()
            for rnd in range(args.rounds):
                for cfg in args.configs:
                    t0 = time.monotonic()
                    order = sides if rnd % 2 == 0 else sides[::-1]
                    for side in order:
                        if side == "gpt2c":
                            r = run_gpt2c(gpt2c_bin, model_dir, cfg, args.threads, precision=args.precision,
                                          cpu_isa=args.cpu_isa)
                        else:
                            r = run_torch(model_dir, cfg, args.threads, prompt_ids, *torch_sides[side],
                                          cpu_isa=args.cpu_isa)
                            torch_info = r if side == "torch" else torch_info
                        runs[cfg.name][side].append(r)
                    g, t = runs[cfg.name]["gpt2c"][-1], runs[cfg.name]["torch"][-1]
                    tok = cfg.B * cfg.N
                    print(f"round {rnd + 1}/{args.rounds} {cfg.name}: gpt2c {tok / g['gen_ms'] * 1e3:.1f} "
                          f"tok/s, torch {tok / t['gen_ms'] * 1e3:.1f} tok/s "
                          f"({time.monotonic() - t0:.0f} s)", flush=True)
            other = load.other_cpus()

            bw = replay = None
            if not args.no_roofline:
                bw, why = measure_bandwidth(args.threads, weight_bytes(args.model, PADDED_VOCAB) / 1e6, tmp)
                if bw is None:
                    print(f"(no bandwidth measurement: {why.strip()})")
                blas = [p for p in gpt2c_blas(gpt2c_bin) if "blas" in os.path.basename(p)]
                if blas:
                    replay = run_replay(args.model, args.threads, blas[0], sorted({c.B for c in args.configs}),
                                        args.cpu_isa)
            print()

        if not args.no_llama:
            llama_info = llama_part(args, gpt2c_bin, model_dir, tmp, LoadMonitor, llama)

    if not args.no_torch:
        print(f"torch: {torch_info['threads']} threads; libs {', '.join(torch_info['blas']) or 'unknown'}")
        print()
        results = [summarize(c, runs[c.name]["gpt2c"], runs[c.name]["torch"]) for c in args.configs]
        print_details(results, runs)
        if bw:
            print_roofline(args, results, bw, replay, len(prompt_ids))

        print("## Results (markdown)")
        print()
        print(f"Generation speed of `gpt2c sample` and of PyTorch {torch_version} with a KV cache "
              f"({args.model}, " + ("float32" if args.precision == "fp32" else "gpt2c bf16 weights and "
                                     "matmul inputs, torch float32")
              + (f", --cpu-isa {args.cpu_isa}" if args.cpu_isa else "")
              + f", {args.threads} threads, top-k 50, prompt of {len(prompt_ids)} tokens; "
              f"medians over {args.rounds} alternating runs each; tok/s = all B samples together; "
              "ms/step = generation time / (N - 1) forward steps; end-to-end = prefill + generation, "
              "model load excluded):")
        print()
        print_table(results)
        report_load(other, during="the timed runs")
        for r in results:
            if r["ratio"] < 1.0:
                print(f"NOTE: gpt2c is slower than PyTorch on {r['cfg'].name}: gpt2c/torch {r['ratio']:.2f}x")
        print()
    if llama_info:
        print_llama_report(args, llama_info)

if __name__ == "__main__":
    main()
