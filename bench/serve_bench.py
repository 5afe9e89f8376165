"""`gpt2c serve` against llama.cpp's own `llama-server`, in one run, on the same d12 weights.

Each server gets 1, 4, 8 and 16 concurrent streaming clients, each asking 64 tokens (end-of-text
forbidden, so every one runs its 64) from a 16-token prompt of its own (consecutive passages of
Tiny Shakespeare, the same list for every server: a server that keeps the KV of a prompt it has
seen, as llama-server does, must still compute each one), over the OpenAI-style /v1/completions; measured per client: the time to its first token, and in all: generated
tokens per second of wall time. Sides: gpt2c fp32 and `--precision bf16` (`--parallel 8`), and
llama-server f32 and f16 GGUF (`--parallel 8`, 1024 positions per slot), both on --threads
threads; and `gpt2c sample` (no HTTP) at one sample. llama-server is built from the llama.cpp
that llama-cpp-python's PyPI sdist vendors (bench/requirements-llama.txt, the same source as
sample_bench.py's), the GGUF files by that source's convert_hf_to_gguf.py.

Run from the repository root:  .venv/bin/python bench/serve_bench.py [--threads 2] [--rounds 2]
  --no-llama          gpt2c alone (no llama.cpp build or peers): its scaling from 1 to 16 clients
  --base-build DIR    also another build of gpt2c (e.g. the commit before a change, built in DIR),
                      its sides run right after this build's, in the same run
  --no-top-k          clients send no top_k (an OpenAI client's request); by default top_k 50
"""
import argparse
import array
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_common import ensure_llama_venv, find_gpt2c
from sample_bench import PROMPT_TEXT, convert_gguf, make_model_dir, prompt_ids_of, prompt_of_length

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = (1, 4, 8, 16)
TOKENS = 64
PARALLEL = 8


def build_llama_server(venv, llama_src):
    """llama-server from the vendored source, once (VENV/llama-server-build)."""
    build = venv / "llama-server-build"
    exe = build / "bin/llama-server"
    if not exe.exists():
        print("building llama-server from", llama_src, flush=True)
        subprocess.run(["cmake", "-S", str(llama_src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                        "-DLLAMA_CURL=OFF", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build), "--target", "llama-server", "-j",
                        str(os.cpu_count() or 1)], check=True, stdout=subprocess.DEVNULL)
    return exe


def ensure_llama_python_server(venv):
    """llama_cpp.server's dependencies (bench/requirements-llama-server.txt) in VENV."""
    py = str(venv / "bin/python")
    if subprocess.run([py, "-c", "import llama_cpp.server.app"], capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "-r",
                        str(ROOT / "bench/requirements-llama-server.txt")], check=True)
    return py


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, timeout=300):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            proc.log.seek(0)
            sys.exit(f"server exited: {proc.log.read().decode(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url + "v1/models", timeout=5) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} not ready after {timeout} s")


def stream_one(url, body):
    """(seconds to the first text, seconds in all, text pieces)"""
    req = urllib.request.Request(url + "v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    first, pieces = None, 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for c in json.loads(line[6:]).get("choices", []):
                if c.get("text"):
                    pieces += 1
                    first = first or time.monotonic() - t0
    return first, time.monotonic() - t0, pieces


def distinct_prompts(gpt2c, n, count, directory):
    """count texts of n tokens each, consecutive passages of Tiny Shakespeare, each of which
    gpt2c tokenizes back into the same n ids."""
    ids = prompt_ids_of(gpt2c, PROMPT_TEXT.read_text()[:200000])
    prompts, u16, txt = [], Path(directory) / "window.u16", Path(directory) / "window.txt"
    for start in range(0, len(ids) - n, n):
        window = ids[start:start + n]
        u16.write_bytes(array.array("H", window).tobytes())
        subprocess.run([str(gpt2c), "detokenize", str(u16), "-o", str(txt)], check=True)
        text = txt.read_text()
        if prompt_ids_of(gpt2c, text) == window:
            prompts.append(text)
            if len(prompts) == count:
                return prompts
    sys.exit(f"fewer than {count} {n}-token passages of {PROMPT_TEXT} tokenize back to themselves")


def load(url, body, prompts, clients):
    """All clients at once, each with the next prompt: (tokens/s in all, TTFT p50, p95 in ms)."""
    bodies = [dict(body, prompt=prompts.pop()) for _ in range(clients)]
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        t0 = time.monotonic()
        runs = list(pool.map(lambda b: stream_one(url, b), bodies))
        wall = time.monotonic() - t0
    ttft = sorted(r[0] * 1e3 for r in runs)
    p95 = ttft[min(len(ttft) - 1, int(round(0.95 * (len(ttft) - 1))))]
    return clients * TOKENS / wall, statistics.median(ttft), p95


def run_side(name, cmd, url, body, prompts, rounds):
    # its log to a file: a pipe nobody reads fills up and stops a chatty server (llama_cpp.server
    # prints every request's timings)
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    proc.log = log
    prompts = list(reversed(prompts))  # popped from the end: every side gets them in one order
    try:
        wait_ready(url, proc)
        stream_one(url, dict(body, prompt=prompts.pop()))  # warm up
        rows = {}
        for c in CLIENTS:
            res = [load(url, body, prompts, c) for _ in range(rounds)]
            rows[c] = tuple(statistics.median(r[k] for r in res) for k in range(3))
            print(f"{name}: {c:2d} clients: {rows[c][0]:6.1f} tok/s in all, TTFT p50 {rows[c][1]:6.0f} ms, "
                  f"p95 {rows[c][2]:6.0f} ms", flush=True)
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-llama", action="store_true", help="gpt2c alone, no llama.cpp peers")
    ap.add_argument("--base-build", help="another gpt2c build to measure in the same run")
    ap.add_argument("--no-top-k", action="store_true",
                    help="clients send no top_k, as OpenAI clients do (gpt2c then draws from every "
                         "token; llama-server keeps its own default, 40)")
    args = ap.parse_args()
    _, gpt2c = find_gpt2c(args.build_dir, ROOT)
    builds = {"gpt2c serve": gpt2c}
    if args.base_build:
        builds["gpt2c (base) serve"] = find_gpt2c(args.base_build, ROOT)[1]
    if not args.no_llama:
        venv, llama_src = ensure_llama_venv(ROOT, None, log=lambda m: print(m, flush=True))
        llama_server = build_llama_server(venv, llama_src)
    with tempfile.TemporaryDirectory(prefix="gpt2c-serve-bench-") as tmp:
        model = Path(tmp) / "d12"
        make_model_dir("d12", model)
        if not args.no_llama:
            gguf, _ = convert_gguf(venv / "bin/python", llama_src, model, tmp)
        prompt_path, ids = prompt_of_length(gpt2c, 16, tmp)
        prompts = distinct_prompts(gpt2c, 16, 1 + sum(CLIENTS) * args.rounds, tmp)
        print(subprocess.run([str(gpt2c), "info"], capture_output=True, text=True).stdout, flush=True)
        print(f"d12 (random weights), {len(ids)}-token prompt, {TOKENS} new tokens per client, "
              f"--parallel {PARALLEL}, {args.threads} threads, medians of {args.rounds} rounds, "
              f"{'no top_k' if args.no_top_k else 'top_k 50'}", flush=True)
        base = {"max_tokens": TOKENS, "temperature": 1.0, "top_k": 50, "seed": 1,
                "stream": True, "logit_bias": {"50256": -100}}
        if args.no_top_k:
            del base["top_k"]
        results = {}
        for precision in ("fp32", "bf16"):
            for label, exe in builds.items():
                port = free_port()
                cmd = [str(exe), "serve", "--model", str(model), "--port", str(port), "--parallel",
                       str(PARALLEL), "--threads", str(args.threads), "--precision", precision]
                results[f"{label} {precision}"] = run_side(f"{label} {precision}", cmd,
                                                           f"http://127.0.0.1:{port}/", base, prompts, args.rounds)
        for kind in (() if args.no_llama else ("f32", "f16")):
            port = free_port()
            cmd = [str(llama_server), "-m", str(gguf[kind]), "--host", "127.0.0.1", "--port", str(port),
                   "-t", str(args.threads), "-tb", str(args.threads), "--parallel", str(PARALLEL),
                   "-c", str(1024 * PARALLEL), "--no-webui"]
            body = dict(base, logit_bias=[[50256, False]], ignore_eos=True)
            results[f"llama-server {kind}"] = run_side(f"llama-server {kind}", cmd,
                                                       f"http://127.0.0.1:{port}/", body, prompts, args.rounds)
        # llama-cpp-python's server: one request at a time (no batching), f16
        if not args.no_llama:
            port = free_port()
            cmd = [ensure_llama_python_server(venv), "-m", "llama_cpp.server", "--model", str(gguf["f16"]),
                   "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(args.threads),
                   "--n_threads_batch", str(args.threads), "--n_ctx", "1024",
                   "--interrupt_requests", "False"]  # (by default a new request cuts the running stream)
            results["llama_cpp.server (Python) f16"] = run_side("llama_cpp.server f16", cmd,
                                                                f"http://127.0.0.1:{port}/", base, prompts,
                                                                args.rounds)
        # `gpt2c sample` at one sample, no HTTP, for the same 64 tokens
        out = subprocess.run([str(gpt2c), "sample", "--model", str(model), "--prompt-file", str(prompt_path),
                              "--num-samples", "1", "--max-tokens", str(TOKENS), "--threads", str(args.threads)],
                             capture_output=True, check=True)
        sample_rate = out.stderr.decode(errors="replace").split("(")[1].split(" tokens/s")[0]
        print(f"\ngpt2c sample fp32, one sample (no HTTP): {sample_rate} tok/s\n")
        print("| server | 1 client tok/s | 4 clients | 8 clients | 16 clients | 8 clients / 1 | "
              "8 clients TTFT p50 / p95 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, rows in results.items():
            print(f"| {name} | {rows[1][0]:.1f} | {rows[4][0]:.1f} | {rows[8][0]:.1f} | {rows[16][0]:.1f} | "
                  f"{rows[8][0] / rows[1][0]:.2f}x | {rows[8][1]:.0f} / {rows[8][2]:.0f} |")


if __name__ == "__main__":
    main()
