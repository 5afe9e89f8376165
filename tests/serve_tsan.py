"""`make tsan-serve`: gpt2c serve built with ThreadSanitizer, under a short concurrent load (24
requests from 12 clients, streaming and not, n of 1 and 2, a third of them scoring their prompt
of token ids with echo and logprobs, two prompts in one request; a client gone mid-stream, one
whose head never ends cut by the deadline thread, SIGTERM at the end); fails if ThreadSanitizer
reports anything. One CPU thread: OpenMP's own threads
are not instrumented, so its barriers would be reported as races."""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch_gpt2 as ref  # noqa: E402
from conftest import wait_for  # noqa: E402


def metrics(url):
    with urllib.request.urlopen(url + "metrics", timeout=600) as r:
        return {l.split()[0]: float(l.split()[1]) for l in r.read().decode().splitlines() if l and l[0] != "#"}


def main(gpt2c):
    with tempfile.TemporaryDirectory(prefix="gpt2c-tsan-") as tmp:
        cfg = ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=1024)
        ref.save_hf_dir(ref.random_init(cfg, 3, noisy=True).float(), tmp)
        proc = subprocess.Popen([gpt2c, "serve", "--model", tmp, "--port", "0", "--threads", "1",
                                 "--parallel", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(os.environ, TSAN_OPTIONS="halt_on_error=0"))
        url = proc.stdout.readline().decode().split(" on ")[1].split(" ")[0]
        port = int(url.rsplit(":", 1)[1].strip("/"))

        def run(i):
            body = {"prompt": "Hello" * (i % 5 + 1), "max_tokens": 10 + i, "seed": i,
                    "stream": i % 2 == 1, "n": 1 + i % 2}
            if i % 3 == 0:  # scoring: prompt logprobs from the prefill, in the engine's thread
                body.update(prompt=[list(range(100, 100 + 40 * (i + 1))), [50256, 11]],
                            echo=True, logprobs=2, max_tokens=i % 2, n=1)
            req = urllib.request.Request(url + "v1/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as r:
                return r.status

        slow = socket.create_connection(("127.0.0.1", port))  # a head that never ends
        slow.sendall(b"GET /health HTTP/1.1\r\n")
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(run, range(24)))
        slow.settimeout(120)
        while slow.recv(100):  # the deadline thread shuts it down within 30 s
            pass
        slow.close()
        accepted = metrics(url)["gpt2c_requests_total"]
        s = socket.create_connection(("127.0.0.1", port))
        b = json.dumps({"prompt": "a", "max_tokens": 500, "stream": True}).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(b) + b)
        s.recv(100)
        # gone once its request is taken; SIGTERM once the server has seen it go and given its
        # slot back, so that the disconnect is a path of its own, not one that SIGTERM ends
        wait_for(lambda: metrics(url)["gpt2c_requests_total"] > accepted, timeout=600,
                 what="the request taken")
        s.close()
        wait_for(lambda: metrics(url)["gpt2c_slots_active"] == 0, timeout=600,
                 what="the gone client's slot back")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=600)
        err = err.decode(errors="replace")
        races = err.count("WARNING: ThreadSanitizer")
        print(f"tsan-serve: {len(codes)} requests ({sorted(set(codes))}), a disconnect, SIGTERM: "
              f"exit {proc.returncode}, {races} ThreadSanitizer reports")
        if races or proc.returncode != 0 or set(codes) != {200}:
            sys.exit(err)


if __name__ == "__main__":
    main(sys.argv[1])
