"""The server under load: `gpt2c serve` on loopback for a bounded time (default 5 minutes), 32
clients sending random prompts and lengths, streamed and not, some disconnecting mid-stream and
some sending malformed requests. Checked: every well-formed request that is not cut off gets a
correct answer (its shape, its usage; a sample of them equal to `gpt2c sample` with the same seed,
and every greedy one equal to the server's own answer alone); every malformed one a 4xx with
OpenAI's error object; the server's RSS flat after the warm-up; no slot lost at the end; and
/metrics' counts equal the clients'.

    .venv/bin/python tests/fault/serve_soak.py [--build-dir build] [--seconds 300] [--clients 32]
    .venv/bin/python tests/fault/serve_soak.py --build-dir build-tsan --seconds 60 --threads 1

Prints the figures; exits non-zero on any failure, and on any ThreadSanitizer report when the
build has it (one CPU thread there: OpenMP's own threads are not instrumented)."""
import argparse
import concurrent.futures
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import torch_gpt2 as ref  # noqa: E402
from conftest import wait_for  # noqa: E402

WORDS = ("the king said that a man of the sea would come to the town and all the people were "
         "glad to see him at last though none knew his name").split()
MALFORMED = [b"{not json", b"[1, 2]", b'{"prompt": 5}', b'{"prompt": "x", "max_tokens": -1}',
             b'{"prompt": "x", "temperature": 9}', b'{"prompt": "x", "n": 99}', b'{"prompt": "x", "bogus": 1}',
             b'{"prompt": "x", "logprobs": 12}', b'{"prompt": "x", "stop": [1]}', b""]


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def post(url, body, timeout=120):
    req = urllib.request.Request(url + "v1/completions", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def stream_and_leave(port, body, after):
    """A streamed request whose client goes away after `after` events."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(data) + data)
    got = b""
    while got.count(b"data: ") < after:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()


def metrics(url):
    with urllib.request.urlopen(url + "metrics", timeout=30) as r:
        text = r.read().decode()
    return {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l and l[0] != "#"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    gpt2c = (ROOT / args.build_dir / "gpt2c").resolve()
    failures = []
    with tempfile.TemporaryDirectory(prefix="gpt2c-soak-") as tmp:
        model = Path(tmp) / "model"
        cfg = ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=256)
        ref.save_hf_dir(ref.random_init(cfg, 3, noisy=True).float(), model)
        proc = subprocess.Popen([str(gpt2c), "serve", "--model", str(model), "--port", "0", "--parallel", "8",
                                 "--max-queue", "64", "--threads", str(args.threads)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(os.environ, TSAN_OPTIONS="halt_on_error=0"))
        line = proc.stdout.readline().decode()
        url = line.split(" on ")[1].split(" ")[0]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        lock = threading.Lock()
        counts = {"ok": 0, "tokens": 0, "malformed": 0, "left": 0, "busy": 0, "streamed": 0}
        checks = []  # (body, text): compared with `gpt2c sample` afterwards
        greedy = {}  # prompt -> texts of its greedy answers

        def client(i):
            rng = random.Random(args.seed * 1000 + i)
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                kind = rng.random()
                prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 60)))
                body = {"prompt": prompt, "max_tokens": rng.randint(1, 48), "seed": rng.randint(0, 1 << 30),
                        "top_k": rng.choice([1, 5, 40]), "temperature": rng.choice([0, 0.7, 1.0])}
                if kind < 0.1:  # malformed
                    status, raw = post(url, rng.choice(MALFORMED))
                    err = json.loads(raw).get("error", {}) if raw[:1] == b"{" else {}
                    with lock:
                        counts["malformed"] += 1
                        if not (400 <= status < 500 and err.get("message") and err.get("type")):
                            failures.append(f"a malformed request got {status} {raw[:200]!r}")
                elif kind < 0.2:  # a stream whose client goes away
                    stream_and_leave(port, dict(body, stream=True, max_tokens=200), rng.randint(1, 5))
                    with lock:
                        counts["left"] += 1
                else:
                    stream = kind < 0.5
                    status, raw = post(url, json.dumps(dict(body, stream=stream)).encode())
                    if status == 503:
                        with lock:
                            counts["busy"] += 1
                        continue
                    if status != 200:
                        with lock:
                            failures.append(f"a well-formed request got {status} {raw[:200]!r}")
                        continue
                    if stream:
                        events = [l[6:] for l in raw.decode().split("\n") if l.startswith("data: ")]
                        if events[-1] != "[DONE]":
                            with lock:
                                failures.append("a stream did not end with [DONE]")
                            continue
                        text = "".join(c["text"] for e in events[:-1] for c in json.loads(e)["choices"])
                        ntok = None
                    else:
                        r = json.loads(raw)
                        text, ntok = r["choices"][0]["text"], r["usage"]["completion_tokens"]
                        if r["usage"]["prompt_tokens"] < 1 or not 1 <= ntok <= body["max_tokens"]:
                            with lock:
                                failures.append(f"usage out of range: {r['usage']}")
                    with lock:
                        counts["ok"] += 1
                        counts["streamed"] += stream
                        if len(checks) < 40 and rng.random() < 0.05:
                            checks.append((body, text))
                        if body["temperature"] == 0 and not stream:
                            greedy.setdefault((prompt, body["max_tokens"]), set()).add(text)

        rss = []
        stop = threading.Event()

        def watch():
            while not stop.wait(5):
                rss.append(rss_kb(proc.pid))

        watcher = threading.Thread(target=watch)
        watcher.start()
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client, range(args.clients)))
        elapsed = time.monotonic() - t0
        stop.set()
        watcher.join()

        # the clients that left mid-stream free their slots once the server sees them gone
        def idle():
            m = metrics(url)
            return m["gpt2c_slots_active"] == 0 and m["gpt2c_queue_length"] == 0
        try:
            wait_for(idle, timeout=60, what="the slots and the queue empty")
        except AssertionError:
            failures.append(f"slots or queue left taken 60 s after the clients ended: {metrics(url)}")
        m = metrics(url)
        sent = counts["ok"] + counts["left"] + counts["busy"]
        # the server counts every completion request it accepted (the busy ones it refused too?)
        served = m["gpt2c_requests_total"]
        if not counts["ok"] + counts["left"] <= served <= sent:
            failures.append(f"/metrics counts {served} requests, the clients {counts}")
        # RSS after the warm-up (the first quarter): flat within 10%
        later = rss[len(rss) // 4:] or rss
        growth = (max(later) - min(later)) / max(min(later), 1)
        if growth > 0.10:
            failures.append(f"RSS grew {growth:.1%} after the warm-up ({min(later)}..{max(later)} kB)")
        proc.terminate()
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            failures.append(f"the server ended with {proc.returncode}: {err.decode()[-500:]}")
        tsan = err.decode(errors="replace").count("WARNING: ThreadSanitizer")
        if tsan:
            failures.append(f"{tsan} ThreadSanitizer reports: {err.decode(errors='replace')[:3000]}")
        for key, texts in greedy.items():
            if len(texts) != 1:
                failures.append(f"a greedy prompt got {len(texts)} different answers")
        same = 0
        for body, text in checks:
            out = subprocess.run([str(gpt2c), "sample", "--model", str(model), "--prompt", body["prompt"], "--num-samples", "1",
                                  "--max-tokens", str(body["max_tokens"]), "--seed", str(body["seed"]),
                                  "--top-k", str(body["top_k"]), "--temperature", str(body["temperature"]),
                                  "--threads", str(args.threads), "--stop-at-eot", "--json"],
                                 capture_output=True, timeout=300)
            want = json.loads(out.stdout)["samples"][0]["text"]
            same += want == text
            if want != text:
                failures.append(f"an answer differs from gpt2c sample: {body}")
        print(f"{elapsed:.0f} s, {args.clients} clients: {counts['ok']} answered ({counts['streamed']} streamed), "
              f"{counts['left']} left mid-stream, {counts['malformed']} malformed (all 4xx: "
              f"{'yes' if not any('malformed' in f for f in failures) else 'NO'}), {counts['busy']} 503; "
              f"/metrics: {served:.0f} requests, {m['gpt2c_tokens_generated_total']:.0f} tokens, "
              f"{m['gpt2c_slots_active']:.0f} slots active at the end; RSS after warm-up "
              f"{min(later) / 1024:.1f}..{max(later) / 1024:.1f} MB ({growth:.1%}); {same}/{len(checks)} "
              f"sampled answers equal gpt2c sample; {len(greedy)} greedy prompts, each one answer")
    for f in failures[:20]:
        print("FAILED:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
