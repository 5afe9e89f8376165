"""HellaSwag scored by EleutherAI's lm-evaluation-harness two ways on the same weights: through
`gpt2c serve` (lm-eval's `local-completions` backend, the server's tokenizer) and through
Hugging Face transformers (lm-eval's `hf` backend, on this machine's torch); and by `gpt2c eval
--hellaswag` (build-nanogpt's completion style) for comparison. The tasks are the first --limit of
the bundled set (data/hellaswag, whose contexts are preprocessed as lm-eval's hellaswag task
does), as tests/lm_eval_tasks/gpt2c_hellaswag_local.yaml scores them (acc, acc_norm).

Run from the repository root, after `make build`:
  .venv/bin/python bench/lm_eval_hellaswag.py --model out/demo-d4/model [--limit 200]
"""
import argparse
import bz2
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASK = "gpt2c_hellaswag_local"


def lm_eval(work, name, args, env):
    out = work / ("out-" + name)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lm_eval", *args, "--tasks", TASK, "--include_path",
                    str(ROOT / "tests/lm_eval_tasks"), "--output_path", str(out)],
                   cwd=work, env=env, check=True, capture_output=True)
    (results,) = out.glob("*/results_*.json")
    r = json.loads(results.read_text())["results"][TASK]
    return r["acc,none"], r["acc_norm,none"], time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a Hugging Face GPT-2 directory")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    gpt2c = ROOT / args.build_dir / "gpt2c"
    model = Path(args.model).resolve()
    context = json.loads((model / "config.json").read_text())["n_positions"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lines = bz2.decompress((ROOT / "data/hellaswag/hellaswag_val_full.txt.bz2").read_bytes()).decode().split("\n")
        with open(work / "hellaswag_local.jsonl", "w") as f:
            for i in range(args.limit):
                t = lines[6 * i:6 * i + 6]
                f.write(json.dumps({"query": t[0], "choices": t[2:6], "label": int(t[1])}) + "\n")
        tok = work / "tokenizer"  # for transformers: GPT-2's vocabulary, offline
        tok.mkdir()
        shutil.copy(ROOT / "data/gpt2/encoder.json", tok / "vocab.json")
        shutil.copy(ROOT / "data/gpt2/vocab.bpe", tok / "merges.txt")
        (tok / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}))
        env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   HF_HOME=str(work / "hf-home"), NO_PROXY="127.0.0.1,localhost",
                   OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
        hf = lm_eval(work, "hf", ["--model", "hf", "--device", "cpu", "--model_args",
                                  f"pretrained={model},tokenizer={tok},dtype=float32"], env)
        server = subprocess.Popen([str(gpt2c), "serve", "--model", str(model), "--port", "0",
                                   "--threads", str(args.threads)], stdout=subprocess.PIPE)
        url = server.stdout.readline().decode().split(" on ")[1].split(" ")[0]
        try:
            served = lm_eval(work, "serve", ["--model", "local-completions", "--model_args",
                                             f"base_url={url}v1/completions,model=m,max_length={context}"], env)
        finally:
            server.terminate()
            server.wait(timeout=60)
        t0 = time.perf_counter()
        ev = subprocess.run([str(gpt2c), "eval", "--model", str(model), "--hellaswag",
                             str(ROOT / "data/hellaswag/hellaswag_val_full.txt.bz2"), "--limit",
                             str(args.limit), "--json", "--threads", str(args.threads)],
                            capture_output=True, check=True, text=True)
        ev_s = time.perf_counter() - t0
    nano = json.loads(ev.stdout)["hellaswag"]
    print(f"# HellaSwag, first {args.limit} tasks of data/hellaswag; model {model}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; --threads {args.threads}")
    print("| scorer | acc | acc_norm | seconds |")
    print("|---|---:|---:|---:|")
    print(f"| lm-eval, `hf` backend (transformers) | {hf[0]:.4f} | {hf[1]:.4f} | {hf[2]:.0f} |")
    print(f"| lm-eval, `local-completions` through `gpt2c serve` | {served[0]:.4f} | {served[1]:.4f} | {served[2]:.0f} |")
    print(f"| `gpt2c eval --hellaswag` (build-nanogpt's completion style) | "
          f"{nano['acc']:.4f} | {nano['acc_norm']:.4f} | {ev_s:.0f} |")


if __name__ == "__main__":
    main()
