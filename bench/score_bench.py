"""Scoring a prompt through `gpt2c serve` (echo with logprobs: what lm-evaluation-harness asks for
every loglikelihood) against its prefill alone, and against the Hugging Face model that lm-eval's
`hf` backend runs (transformers on this machine's torch), on the same d12 weights, in one run.

Measured per request, alternating sides, medians of --rounds:
  - prefill: {"prompt": [ids], "max_tokens": 1} over HTTP (the prompt run, one token drawn);
  - scoring: the same with "echo": true, "logprobs": 1 (lm-eval's request: every prompt
    position's logprob and best token, from the LM head over each prefill chunk's rows);
  - Hugging Face: GPT2LMHeadModel's forward over the ids, then log_softmax and the gather of each
    token's logprob and the argmax (lm-eval's `hf` loglikelihood), in this process, --threads.
Prompts of --lengths tokens (Tiny Shakespeare, as `gpt2c tokenize` reads it).

Run from the repository root:  .venv/bin/python bench/score_bench.py [--threads 2] [--rounds 5]
"""
import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_common import find_gpt2c, lscpu, thread_env
from sample_bench import make_model_dir, prompt_ids_of

ROOT = Path(__file__).resolve().parent.parent


def start_server(gpt2c, model_dir, threads, precision):
    proc = subprocess.Popen([str(gpt2c), "serve", "--model", str(model_dir), "--port", "0",
                             "--threads", str(threads), "--parallel", "1", "--precision", precision],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=thread_env(threads))
    line = proc.stdout.readline().decode()
    if "http://" not in line:
        sys.exit("gpt2c serve did not start: " + line + proc.stderr.read().decode())
    return proc, line.split(" on ")[1].split(" ")[0]


def post(url, body):
    req = urllib.request.Request(url + "v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        answer = json.loads(r.read())
    return time.perf_counter() - t0, answer


def hf_scorer(model_dir, threads):
    import torch
    from transformers import GPT2LMHeadModel
    torch.set_num_threads(threads)
    model = GPT2LMHeadModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()

    def score(ids):
        x = torch.tensor([ids])
        t0 = time.perf_counter()
        with torch.no_grad():
            lp = torch.log_softmax(model(x).logits[0].float(), dim=-1)
            picked = lp[:-1].gather(1, x[0, 1:, None])
            greedy = lp[:-1].argmax(-1)
        return time.perf_counter() - t0, picked, greedy
    return score, torch.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build", help="gpt2c's build (default: build/)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--lengths", default="128,512,1023")
    ap.add_argument("--precision", default="fp32", help="gpt2c's: fp32 or bf16")
    args = ap.parse_args()
    _, gpt2c = find_gpt2c(args.build_dir, ROOT)
    lengths = [int(n) for n in args.lengths.split(",")]
    text = (ROOT / "data/tinyshakespeare/input.txt").read_text()[:20000]
    ids = prompt_ids_of(gpt2c, text)
    cpu = lscpu()
    flags = cpu.get("Flags", "").split()
    isa = "AMX" if "amx_tile" in flags else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "x86-64"
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"# score_bench {time.strftime('%Y-%m-%d %H:%M')}, gpt2c {git} ({gpt2c}), --threads {args.threads}, "
          f"precision {args.precision}, python {platform.python_version()}")
    print(f"# cpu: {cpu.get('Model name')} ({cpu.get('Vendor ID')}), {cpu.get('CPU(s)')} CPUs, best ISA {isa}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "d12"
        make_model_dir("d12", model_dir)
        score_hf, torch_version = hf_scorer(model_dir, args.threads)
        proc, url = start_server(gpt2c, model_dir, args.threads, args.precision)
        print("Hugging Face side: transformers GPT2LMHeadModel on torch", torch_version)
        print("| prompt tokens | gpt2c prefill ms | gpt2c scoring ms | scoring / prefill | "
              "Hugging Face ms | Hugging Face / gpt2c scoring | largest logprob difference |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        try:
            for n in lengths:
                prompt = ids[:n]
                times = {"prefill": [], "scoring": [], "hf": []}
                post(url, {"prompt": [prompt], "max_tokens": 1})  # warm-up
                for _ in range(args.rounds):
                    times["prefill"].append(post(url, {"prompt": [prompt], "max_tokens": 1,
                                                       "temperature": 0})[0])
                    t, answer = post(url, {"prompt": [prompt], "max_tokens": 1, "temperature": 0,
                                           "echo": True, "logprobs": 1})
                    times["scoring"].append(t)
                    t, picked, _ = score_hf(prompt)
                    times["hf"].append(t)
                got = answer["choices"][0]["logprobs"]["token_logprobs"][1:n]
                diff = max(abs(g - float(w)) for g, w in zip(got, picked[:, 0]))
                med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
                print(f"| {n} | {med['prefill']:.0f} | {med['scoring']:.0f} | "
                      f"{med['scoring'] / med['prefill']:.2f}x | {med['hf']:.0f} | "
                      f"{med['hf'] / med['scoring']:.2f}x | {diff:.1e} |", flush=True)
                print("  raw ms:", {k: [round(x * 1e3) for x in v] for k, v in times.items()})
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
