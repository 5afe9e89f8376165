"""How fast `gpt2c serve` answers /health while slow clients hold connections open (issue 21's
slowloris: "/health answering within a second while 260 slow sockets are open").

`gpt2c serve` on 127.0.0.1 with a tiny random model (2 layers, 64 wide); 260 connections, 52
from each of 127.0.0.2..6 (the server keeps at most 64 per address), each sending the start of
a request head and then one header line every --period seconds, never the end of it. The
server closes each after its 30 s head deadline; the attacker reopens it within 0.2 s, so 260
are open nearly all along (each probe notes how many were). Meanwhile --probes GET /health requests from 127.0.0.1, one
every --gap seconds, each on a fresh connection: the time from connect to the whole answer,
and how many slow connections were open as it was sent. First the same probes with no slow
connections, as the baseline. Every loop is bounded and every socket is closed at the end.

Run from the repository root:  .venv/bin/python bench/slowloris_bench.py [--build-dir build]
"""
import argparse
import os
import platform
import re
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
SOURCES = ["127.0.0.%d" % i for i in range(2, 7)]
# the hostile-client tests' own: a connection from a loopback address, and whether the server closed it
from test_serve_hostile import closed_by_peer, connect  # noqa: E402


def tiny_model(directory):
    import torch_gpt2 as ref  # tests/torch_gpt2.py: the tests' PyTorch GPT-2 and HF writer
    ref.save_hf_dir(ref.random_init(ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=1024), 3), directory)


class Attack:
    """`per_source` slow connections from each source address, from a thread that sends each a
    header line every `period` s and reopens those the server closed, for at most `limit` s."""

    def __init__(self, port, per_source, period, limit):
        self.port, self.period, self.limit = port, period, limit
        self.first = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
        self.lock = threading.Lock()
        self.socks = [None] * (per_source * len(SOURCES))
        self.reopened = self.failed = 0
        for i in range(len(self.socks)):
            self._open(i)
        self.done = threading.Event()
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _open(self, i):
        try:
            s = connect(self.port, SOURCES[i % len(SOURCES)])
            s.sendall(self.first)
        except OSError:
            self.failed += 1
            s = None
        with self.lock:
            self.socks[i] = s

    def open_now(self):
        """Slow connections open now as the server sees them: held, and nothing to read (the
        server closing one makes it readable; nothing is read here)."""
        p = select.poll()
        with self.lock:
            held = [s for s in self.socks if s is not None]
            for s in held:
                p.register(s, select.POLLIN)
            return len(held) - len(p.poll(0))

    def _run(self):
        """Every 0.2 s: reopen what the server closed; every `period` s: a header line each."""
        n, next_line = 0, time.monotonic() + self.period
        while not self.done.wait(0.2) and time.monotonic() - self.t0 < self.limit:
            send = time.monotonic() >= next_line
            if send:
                n, next_line = n + 1, next_line + self.period
            for i in range(len(self.socks)):
                s = self.socks[i]
                if s is None or closed_by_peer(s):
                    if s is not None:
                        s.close()
                    with self.lock:
                        self.socks[i] = None
                    self._open(i)
                    self.reopened += 1
                elif send:
                    try:
                        s.sendall(b"X-Slow-%d: %d\r\n" % (n, n))
                    except OSError:
                        pass

    def close(self):
        self.done.set()
        self.thread.join(timeout=60)
        with self.lock:
            for s in self.socks:
                if s is not None:
                    s.close()
            self.socks = [None] * len(self.socks)


def probe(port, timeout):
    """Seconds from connect to the whole answer of GET /health, and its status line."""
    t0 = time.perf_counter()
    with connect(port, "127.0.0.1", timeout) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
        got = b""
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            got += piece
    return time.perf_counter() - t0, got.split(b"\r\n", 1)[0].decode(errors="replace")


def probes(port, n, gap, timeout, attack=None):
    """n probes `gap` s apart: [(seconds or None on a timeout, status, slow connections open)]."""
    out = []
    for _ in range(n):
        open_now = attack.open_now() if attack else 0
        try:
            sec, status = probe(port, timeout)
        except OSError as e:
            sec, status = None, repr(e)
        out.append((sec, status, open_now))
        time.sleep(gap)
    return out


def summary(label, rows, all_open=0):
    """p50 and max over the probes (with all_open: over those sent while all of them were open)."""
    if all_open:
        rows = [r for r in rows if r[2] >= all_open]
        label = label.rstrip(":") + ", all open:"
    secs = [r[0] for r in rows if r[0] is not None]
    bad = [r[1] for r in rows if r[0] is None or " 200 " not in r[1] + " "]
    line = "%-32s %d probes" % (label, len(rows))
    if secs:
        line += ", /health p50 %.1f ms, max %.1f ms" % (1e3 * statistics.median(secs), 1e3 * max(secs))
    if any(r[2] for r in rows):
        opens = [r[2] for r in rows]
        line += "; slow connections open at each probe: min %d, median %d" % (min(opens), statistics.median(opens))
    if bad:
        line += "; %d not 200: %s" % (len(bad), bad[:3])
    return line


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        return m.group(1).strip() if m else platform.processor()
    except OSError:
        return platform.processor()


def build_kind(build_dir):
    """CMAKE_BUILD_TYPE and the sanitizer setting of a CMake build directory."""
    kind = {}
    try:
        for line in (build_dir / "CMakeCache.txt").read_text().splitlines():
            for key in ("CMAKE_BUILD_TYPE", "GPT2C_SANITIZE"):
                if line.startswith(key + ":"):
                    kind[key] = line.split("=", 1)[1]
    except OSError:
        pass
    return "%s%s" % (kind.get("CMAKE_BUILD_TYPE") or "?", ", ASan+UBSan" if kind.get("GPT2C_SANITIZE") == "ON" else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--sockets", type=int, default=260, help="slow connections (a multiple of 5)")
    ap.add_argument("--period", type=float, default=5.0, help="seconds between a slow connection's header lines")
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between probes")
    ap.add_argument("--timeout", type=float, default=30.0, help="a probe's socket timeout")
    a = ap.parse_args()
    gpt2c = (ROOT / a.build_dir / "gpt2c").resolve()
    if not gpt2c.exists():
        sys.exit("no %s: build first (make)" % gpt2c)
    per_source = (a.sockets + len(SOURCES) - 1) // len(SOURCES)
    with tempfile.TemporaryDirectory() as tmp:
        tiny_model(Path(tmp) / "model")
        err = open(Path(tmp) / "serve.err", "w+")
        proc = subprocess.Popen([str(gpt2c), "serve", "--model", str(Path(tmp) / "model"), "--port", "0",
                                 "--threads", "2"], stdout=subprocess.PIPE, stderr=err)
        try:
            line = proc.stdout.readline().decode(errors="replace")
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if not m:
                err.seek(0)
                sys.exit("the server did not start: %r %s" % (line, err.read()[-2000:]))
            port = int(m.group(1))
            print("gpt2c serve (%s, %s build), tiny random model (2 layers, 64 wide); %s, %d CPUs; %s"
                  % (gpt2c.relative_to(ROOT), build_kind(gpt2c.parent), cpu_name(), os.cpu_count(),
                     time.strftime("%Y-%m-%d")))
            print("load average at the start: %.2f %.2f %.2f" % os.getloadavg())
            print("%d slow connections (%d from each of %s..%s), a header line every %g s each, "
                  "reopened when the server closes them; probes every %g s"
                  % (per_source * len(SOURCES), per_source, SOURCES[0], SOURCES[-1], a.period, a.gap))
            quiet = probes(port, a.probes, a.gap, a.timeout)
            print(summary("no slow connections:", quiet), flush=True)
            limit = a.probes * (a.gap + a.timeout) + 60  # the attack ends even if the probes hang
            attack = Attack(port, per_source, a.period, limit)
            try:
                time.sleep(a.period)  # every slow connection has sent a line more
                loud = probes(port, a.probes, a.gap, a.timeout, attack)
            finally:
                attack.close()
            print(summary("%d slow connections:" % len(attack.socks), loud))
            print(summary("%d slow connections:" % len(attack.socks), loud, all_open=len(attack.socks)))
            print("  reopened after the server closed them: %d; failed to open: %d"
                  % (attack.reopened, attack.failed))
            print("load average at the end: %.2f %.2f %.2f" % os.getloadavg())
            print("  each probe (ms, slow connections open): " + ", ".join(
                "%s/%d" % ("%.1f" % (1e3 * s) if s is not None else "timeout", o) for s, _, o in loud))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.close()


if __name__ == "__main__":
    main()
