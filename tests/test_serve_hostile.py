"""`gpt2c serve` against hostile clients, on loopback only (127.0.0.1, and 127.0.0.2..9 as other
client addresses): run directories that crash or hang it or reach outside --runs, request
fields that break its error answers, connections that trickle their headers to lock everyone out,
bodies it would wait for though its answer is already known, many big requests at once, web
pages posting to it cross-site (a CORS "simple request", DNS rebinding). Every socket has a
timeout and every loop a bound: a server that hangs fails a test, it never hangs the run."""
import collections
import concurrent.futures
import contextlib
import errno
import json
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import GPT2C, SANITIZER_MARKS, wait_for
from test_serve import PROMPT, model_dir  # noqa: F401  (model_dir: the fixture, context 1024)

# ---------------------------------------------------------------------------------------------
# Helpers: a server, raw HTTP with a timeout from a chosen source address, peak RSS


class Srv:
    """`gpt2c serve --port 0 FLAGS...` (a model's with model=DIR), its stderr in a file."""

    def __init__(self, *flags, model=None):
        args = [str(GPT2C), "serve", "--port", "0", "--threads", "2"]
        args += ["--model", str(model)] if model else []
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args + [str(f) for f in flags], stdout=subprocess.PIPE,
                                     stderr=self.err)
        guard = threading.Timer(120, self.proc.kill)  # a start that hangs fails, not hangs
        guard.start()
        line = self.proc.stdout.readline().decode(errors="replace")
        guard.cancel()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the server did not start: %r %s" % (line, self.stderr()))
        self.port = int(m.group(1))

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def request(self, method, path, body=None, **kw):
        try:
            return http(self.port, method, path, body, **kw)
        except ConnectionError:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise
            raise AssertionError("the server died (exit status %d): %s"
                                 % (self.proc.returncode, self.stderr()[-2000:]))

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, then (rc, stderr); killed if it does not stop within 60 s (rc None)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
            rc = self.proc.returncode
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        return rc, self.stderr()

    def stop_clean(self):
        rc, err = self.stop()
        assert rc == 0 and not any(m in err for m in SANITIZER_MARKS), (rc, err[-4000:])


@contextlib.contextmanager
def serving(*flags, model=None):
    """A Srv for a with block: stopped at its end, and then it must exit 0 with no sanitizer
    report (unless the block failed already: that failure is the one to see)."""
    s = Srv(*flags, model=model)
    try:
        yield s
    except BaseException:
        s.stop()
        raise
    s.stop_clean()


def connect(port, src="127.0.0.1", timeout=30.0):
    """A TCP connection to 127.0.0.1:port from the loopback address src."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


class Resp:
    def __init__(self, status, headers, body, interim):
        self.status, self.headers, self.body, self.interim = status, headers, body, interim
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None

    def error(self):
        """The OpenAI error object {"message", "type", "param", "code"} (AssertionError if none)."""
        assert isinstance(self.json, dict) and isinstance(self.json.get("error"), dict), \
            (self.status, self.body[:300])
        e = self.json["error"]
        assert {"message", "type", "param", "code"} <= set(e), e
        return e

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:200])


def read_head(sock, buf=b""):
    """(status, headers with lower-case names, bytes after the head, status line)"""
    while b"\r\n\r\n" not in buf:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError("the server closed the connection before answering (%r)" % buf[:200])
        buf += piece
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, rest, lines[0]


def read_response(sock, head_only=False):
    """One response (a HEAD's: head_only), after any 1xx interim answers (kept, in .interim)."""
    interim, rest = [], b""
    while True:
        status, headers, rest, line = read_head(sock, rest)
        if status >= 200:
            break
        interim.append(line)
    if head_only or status in (204, 304):
        return Resp(status, headers, b"", interim)
    body = rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(body) < n:
            piece = sock.recv(65536)
            if not piece:
                raise ConnectionError("the body ended early")
            body += piece
        body = body[:n]
    elif "chunked" in headers.get("transfer-encoding", ""):
        while not body.endswith(b"0\r\n\r\n"):
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
        out, pos = b"", 0
        while True:
            eol = body.index(b"\r\n", pos)
            n = int(body[pos:eol].split(b";")[0], 16)
            if n == 0:
                break
            out += body[eol + 2:eol + 2 + n]
            pos = eol + 4 + n
        body = out
    else:
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
    return Resp(status, headers, body, interim)


def http(port, method, path, body=None, headers=None, timeout=60.0, src="127.0.0.1", host=None,
         send_body=True):
    """One request on a fresh connection, read within `timeout` s (socket.timeout if not).
    A body (bytes, or an object sent as JSON) gets Content-Type: application/json unless
    headers say otherwise (None: no such header). send_body=False sends the head alone."""
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    h = {"Host": host or "127.0.0.1:%d" % port, "Connection": "close"}
    if body is not None:
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in h.items() if v is not None) + "\r\n"
    with connect(port, src, timeout) as s:
        s.sendall(head.encode("latin-1") + (body if body is not None and send_body else b""))
        return read_response(s, head_only=method == "HEAD")


def peak_rss(pid):
    """VmHWM of a process, in bytes: the most memory it has held at once."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def closed_by_peer(sock):
    """True once the server has closed the connection (EOF or reset); never blocks. What it
    sent before closing is read and dropped."""
    p = select.poll()
    p.register(sock, select.POLLIN)
    while p.poll(0):  # readable: data, the end, or an error
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True
    return False


def jsonl(recs):
    """Log lines as `gpt2c train` writes them: compact JSON, one a line."""
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in recs)


def write_log(path, recs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonl(recs))


def records(n, start=1):
    """Training steps' log records, as `gpt2c train` writes them."""
    return [{"step": i, "loss": 10.9876543 - i * 1e-5, "lr": 0.000599999985, "norm": 1.25083721,
             "dt_ms": 123.456, "tok_s": 5321.5} for i in range(start, start + n)]


def names(resp):
    assert resp.status == 200, resp
    return [r["name"] for r in resp.json]


# ---------------------------------------------------------------------------------------------
# Servers shared by the tests whose flags do not differ


@pytest.fixture(scope="module")
def srv(model_dir):  # noqa: F811
    s = Srv("--parallel", 2, model=model_dir)
    yield s
    s.stop_clean()


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """DIR with one plain run ("good"), and runs that reach outside it: "linkdir", a symlink to a
    run directory elsewhere; "linklog", whose log.jsonl is a symlink to a file elsewhere."""
    root = tmp_path_factory.mktemp("hostile-runs")
    d, outside = root / "runs", root / "outside"
    write_log(d / "good" / "log.jsonl", records(5))
    write_log(outside / "elsewhere" / "log.jsonl", records(3))
    write_log(outside / "secret.jsonl", records(2))
    (d / "linkdir").symlink_to(outside / "elsewhere", target_is_directory=True)
    (d / "linklog").mkdir()
    (d / "linklog" / "log.jsonl").symlink_to(outside / "secret.jsonl")
    return d


@pytest.fixture(scope="module")
def runs_srv(runs_dir, model_dir):  # noqa: F811
    s = Srv("--runs", runs_dir, model=model_dir)
    yield s
    s.stop_clean()


# ---------------------------------------------------------------------------------------------
# 1. A run directory whose name is not UTF-8


@pytest.fixture
def bad_name_runs(tmp_path):
    d = tmp_path / "runs"
    write_log(d / "a" / "log.jsonl", records(3))
    bad = os.path.join(os.fsencode(d), b"b\xff")
    os.mkdir(bad)
    with open(os.path.join(bad, b"log.jsonl"), "w") as f:
        f.write(jsonl(records(3)))
    return d


def test_runs_json_with_a_non_utf8_run_name(bad_name_runs):
    """A run named b"b\\xff" (not UTF-8, so not a JSON string) crashed /runs.json (SIGSEGV).
    Promised: 200 listing the UTF-8 named run only, and the server stays up."""
    with serving("--runs", bad_name_runs) as s:
        r = s.request("GET", "/runs.json", timeout=30)
        assert names(r) == ["a"]
        assert s.request("GET", "/health").status == 200


def test_run_log_of_a_non_utf8_run_name(bad_name_runs):
    """/runs/log?name=b%ff answered 404 with an empty message. Promised: 404 that says why."""
    with serving("--runs", bad_name_runs) as s:
        r = s.request("GET", "/runs/log?name=b%ff", timeout=30)
        assert r.status == 404 and r.error()["message"], r


# ---------------------------------------------------------------------------------------------
# 2. Too many prompts in one request


def test_too_many_prompts_names_their_count(model_dir):  # noqa: F811
    """4 prompts on --parallel 1 --max-queue 2: the 400's message read the prompts after freeing
    them ("0 prompt(s)"). Promised: a request may hold up to parallel + max-queue prompts; past
    that, 400 on "prompt" whose message gives the true count."""
    with serving("--parallel", 1, "--max-queue", 2, model=model_dir) as s:
        r = s.request("POST", "/v1/completions", {"prompt": [PROMPT] * 4, "max_tokens": 1})
        assert r.status == 400, r
        e = r.error()
        assert e["param"] == "prompt" and "4 prompt(s)" in e["message"], e
        # 3 = 1 + 2 is within the limit (the queue may be busy: 503 then, not 400)
        r = s.request("POST", "/v1/completions", {"prompt": [PROMPT] * 3, "max_tokens": 1})
        assert r.status in (200, 503), r


# ---------------------------------------------------------------------------------------------
# 3. Slowloris: connections that never finish their headers


class Trickle:
    """Connections from the given source addresses, each sending `first` and then `tick(n)`
    every `period` s, from a background thread that stops after `limit` s."""

    def __init__(self, port, sources, per_source, first, tick, period=5.0, limit=150.0):
        self.port, self.tick, self.period, self.limit = port, tick, period, limit
        self.socks = []
        try:
            for src in sources:
                for _ in range(per_source):
                    s = connect(port, src, timeout=10)
                    s.sendall(first)
                    self.socks.append(s)
        except BaseException:
            self.close()
            raise
        self.t0 = time.monotonic()
        self.closed = set()  # indices the server closed
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        while not self.done.wait(self.period) and time.monotonic() - self.t0 < self.limit:
            n += 1
            for i, s in enumerate(self.socks):
                if i not in self.closed:
                    try:
                        s.sendall(self.tick(n))
                    except OSError:
                        pass

    def poll(self):
        """How many of the connections the server has closed so far."""
        for i, s in enumerate(self.socks):
            if i not in self.closed and closed_by_peer(s):
                self.closed.add(i)
        return len(self.closed)

    def wait_all_closed(self, by, what):
        """Until the server has closed every one, at most `by` s after they were opened."""
        left = by - (time.monotonic() - self.t0)
        try:
            wait_for(lambda: self.poll() == len(self.socks), left, what)
        except AssertionError:
            raise AssertionError("%d of %d %s still open %g s after they opened"
                                 % (len(self.socks) - len(self.closed), len(self.socks), what, by))

    def close(self):
        if hasattr(self, "done"):
            self.done.set()
            self.thread.join(timeout=30)
        for s in self.socks:
            s.close()


class TestSlowloris:
    """260 connections (52 from each of 127.0.0.2..6) that each send a header line every 5 s took
    every one of the server's 256 connections, for ever: nobody else got an answer. And a body
    may trickle as slowly. The slow parts run together: the connections open in the fixture."""

    @pytest.fixture(scope="class")
    def trickling(self, model_dir):  # noqa: F811
        """(server, heads: 260 connections trickling header lines, bodies: 4 connections from
        127.0.0.8 with a whole head declaring a 1000-byte body that comes 4 bytes every 5 s)"""
        with serving(model=model_dir) as s:
            heads = Trickle(s.port, ["127.0.0.%d" % i for i in range(2, 7)], 52,
                            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % s.port,
                            lambda n: b"X-Trickle-%d: %d\r\n" % (n, n))
            try:
                bodies = Trickle(s.port, ["127.0.0.8"], 4,
                                 b"POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                                 b"application/json\r\nContent-Length: 1000\r\n\r\n{\"content\": \""
                                 % s.port, lambda n: b"aaaa")
                try:
                    yield s, heads, bodies
                finally:
                    bodies.close()
            finally:
                heads.close()

    def test_others_are_answered_while_connections_trickle(self, trickling):
        """Promised: room for at least 1024 connections, so 127.0.0.1 gets /health at once."""
        s, heads, _ = trickling
        try:
            r = s.request("GET", "/health", timeout=10)
        except OSError as e:  # socket.timeout, reset, closed
            raise AssertionError("no answer to /health while 260 connections trickle: %r" % e)
        assert r.status == 200, r

    def test_one_address_gets_at_most_64_connections(self, model_dir):  # noqa: F811
        """100 connections from 127.0.0.7 that send nothing. Promised: at most 64 per client
        address; the server closes the others at once, and the ones it keeps are served. (Were
        the 36 closed by the 30 s head deadline instead, so would the 64 be.)"""
        socks = []
        with serving(model=model_dir) as s:
            try:
                for _ in range(100):
                    socks.append(connect(s.port, "127.0.0.7", timeout=10))
                closed = set()

                def enough():
                    closed.update(i for i, c in enumerate(socks) if i not in closed and closed_by_peer(c))
                    return len(closed) >= 100 - 64

                try:
                    wait_for(enough, 60, "the server to close the connections past 64 from one address")
                except AssertionError:
                    raise AssertionError("%d of 100 connections from 127.0.0.7 still open after 60 s"
                                         % (100 - len(closed)))
                kept = [c for i, c in enumerate(socks) if i not in closed]
                assert len(kept) == 64, "%d connections kept" % len(kept)
                kept = kept[0]
                kept.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % s.port)
                assert read_response(kept).status == 200
            finally:
                for c in socks:
                    c.close()

    def test_a_head_that_never_ends_is_cut(self, trickling):
        """Promised: the request head must arrive within 30 s of the connection's start, so the
        server closes every trickling connection (EOF) well before 120 s."""
        s, heads, _ = trickling
        heads.wait_all_closed(120, "connections trickling header lines")
        assert s.request("GET", "/health", timeout=30).status == 200

    def test_a_body_that_never_ends_is_cut(self, trickling):
        """Promised: the body must arrive within 30 s of its head, so the server closes the
        connections trickling a body (EOF) well before 120 s."""
        s, _, bodies = trickling
        bodies.wait_all_closed(120, "connections trickling a body")
        assert s.request("GET", "/health", timeout=30).status == 200


# ---------------------------------------------------------------------------------------------
# 4. Memory: bodies it need not wait for, and many big requests at once


def test_a_huge_declared_body_is_refused_at_once(srv):
    """Content-Length: 5000000000 with Expect: 100-continue got "100 Continue" (send it!).
    Promised: 413 straight away, no 100 Continue, the body never sent."""
    with connect(srv.port, timeout=20) as c:
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                  b"application/json\r\nContent-Length: 5000000000\r\nExpect: 100-continue\r\n\r\n"
                  % srv.port)
        status, _, _, line = read_head(c)
        assert status == 413, line


def test_an_unknown_path_does_not_wait_for_the_body(srv):
    """A POST to an unknown path declaring a 1 MB body, head only: the 404 waited for the body.
    Promised: the 404 comes without it."""
    try:
        r = srv.request("POST", "/nope", b"x" * 1000000, send_body=False, timeout=60)
    except socket.timeout:
        raise AssertionError("no 404 within 60 s: the server waits for the body")
    assert r.status == 404, r


def test_no_key_does_not_wait_for_the_body(model_dir):  # noqa: F811
    """With --api-key, a POST /v1/completions without Authorization declaring a 1 MB body,
    head only: the 401 waited for the body. Promised: the 401 comes without it."""
    with serving("--api-key", "K", model=model_dir) as s:
        try:
            r = s.request("POST", "/v1/completions", b"x" * 1000000, send_body=False, timeout=60)
        except socket.timeout:
            raise AssertionError("no 401 within 60 s: the server waits for the body")
        assert r.status == 401, r


def burst(port, request, n, timeout=600.0, sources=("127.0.0.1", "127.0.0.9")):
    """`request` (bytes) on n connections at once (from the source addresses in turn, so that
    each has fewer than the 64 a client address may hold): all of each but its last byte first, then the
    last bytes one after the other, so that the server gets the n requests together. Each
    answer, or "refused" where the server reset the connection while the request was still
    being sent (a refusal before the body, which item 4(b) allows; its 503 may be lost to the
    reset)."""
    socks = []
    try:
        for i in range(n):
            socks.append(connect(port, sources[i % len(sources)], timeout=timeout))
        cut = [False] * n
        for last in (False, True):
            for i, c in enumerate(socks):
                if not cut[i]:
                    try:
                        c.sendall(request[-1:] if last else request[:-1])
                    except OSError:
                        cut[i] = True

        def answer(i):
            try:
                return read_response(socks[i])
            except OSError:  # ConnectionError too
                if cut[i]:
                    return "refused"
                raise

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(answer, range(n)))
    finally:
        for c in socks:
            c.close()


def under_load(s, request, n, check):
    """Peak RSS growth of server s while n clients send `request` at once; each answer must
    pass check (a 200), be a 503 with Retry-After, or a refusal (see burst)."""
    before = peak_rss(s.proc.pid)
    answers = burst(s.port, request, n)
    grew = peak_rss(s.proc.pid) - before
    codes = [a if a == "refused" else a.status for a in answers]
    print("%d x %s: %s; peak RSS grew %.0f MiB" % (n, request.split(b" HTTP")[0].decode(),
                                                    dict(collections.Counter(codes)), grew / 2**20))
    for a in answers:
        if a != "refused" and a.status == 200:
            check(a)
        else:
            assert a == "refused" or (a.status == 503 and a.headers.get("retry-after")), a
    assert 200 in codes, codes
    return grew


# What a server that holds at most ~256 MiB of request data at once may add to its peak RSS,
# AddressSanitizer's 256 MiB quarantine (and redzones) included. Today's (all requests at once:
# see burst) grew by about 2.0 GB (tokenize x48) and 1.5 GB (runs/log x64) in a Release build,
# 3.3 and 4.2 GB under AddressSanitizer.
RSS_BOUND = 1200 << 20


def test_many_big_tokenize_requests_at_once(model_dir):  # noqa: F811
    """48 clients at once each POST /tokenize 1 MiB of text that is one token per byte ("a1a1...":
    a million tokens, tens of MB of JSON objects each). Promised: each gets its tokens (200) or
    503 with Retry-After, and the server's peak RSS grows by less than RSS_BOUND."""
    with serving(model=model_dir) as s:
        small = s.request("POST", "/tokenize", {"content": "a1" * 8})
        assert small.status == 200 and len(small.json["tokens"]) == 16, small
        pair = small.json["tokens"][:2]
        content = "a1" * (((1 << 20) - 64) // 2)
        body = json.dumps({"content": content}).encode()
        assert len(body) <= 1 << 20
        request = (b"POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json"
                   b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (s.port, len(body)) + body)

        def check(r):
            assert r.json["tokens"] == pair * (len(content) // 2)

        grew = under_load(s, request, 48, check)
        assert grew < RSS_BOUND, "peak RSS grew %.0f MiB (bound %d)" % (grew / 2**20, RSS_BOUND >> 20)


def test_many_reads_of_a_big_log_at_once(tmp_path):
    """64 clients at once read an 8 MiB run log from offset 0 (a 4 MiB chunk each, today: tens
    of MB of JSON objects). Promised: each gets records (200) or 503 with Retry-After, and the
    server's peak RSS grows by less than RSS_BOUND."""
    d = tmp_path / "runs"
    log = d / "big" / "log.jsonl"
    log.parent.mkdir(parents=True)
    with open(log, "w") as f:
        step = 1
        while f.tell() < 8 << 20:
            f.write(jsonl(records(1000, start=step)))
            step += 1000
    with serving("--runs", d) as s:
        request = (b"GET /runs/log?name=big&from=0 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                   b"Connection: close\r\n\r\n" % s.port)

        def check(r):
            assert r.json["records"][0]["step"] == 1 and r.json["next"] > 0

        grew = under_load(s, request, 64, check)
        assert grew < RSS_BOUND, "peak RSS grew %.0f MiB (bound %d)" % (grew / 2**20, RSS_BOUND >> 20)


def test_a_request_bigger_than_one_request_may_hold_is_400(srv):
    """One request whose memory need alone passes what one request may hold (half the 256 MiB
    bound: it could never be served, so not 503 and no Retry-After). 66 prompts (the most
    --parallel 2 takes: 2 slots and the 64 of the queue) x n 2 x 1000 tokens with logprobs and a
    logit_bias: about 138 MiB by the server's estimate (routes.c, completion_bytes: 800 bytes a
    token with logprobs, three vocabulary-wide float arrays a prompt with a bias), past 128 MiB.
    Refused before anything is generated; the server answers the next request."""
    body = {"prompt": [PROMPT] * 66, "n": 2, "max_tokens": 1000, "logprobs": 1, "logit_bias": {"11": 1}}
    r = srv.request("POST", "/v1/completions", body, timeout=60)
    assert r.status == 400 and "retry-after" not in r.headers, r
    e = r.error()
    assert "more than the server allows one request (128 MB)" in e["message"], e
    assert srv.request("GET", "/health").status == 200


# ---------------------------------------------------------------------------------------------
# 5, 6. Values that broke the error answers


def test_top_p_below_floats_range(srv):
    """top_p 1e-50 is 0 as a float: it got 503 with Retry-After. Promised: 400 on "top_p"."""
    r = srv.request("POST", "/v1/completions", {"prompt": PROMPT, "max_tokens": 2, "top_p": 1e-50})
    assert r.status == 400 and r.error()["param"] == "top_p", r


def test_a_long_non_ascii_unknown_field(srv):
    """An unknown field named 40 x "é" (80 bytes): the param, cut mid-character, was not UTF-8
    and the answer became 500 "out of memory". Promised: 400 whose param is the name's start,
    cut at a character boundary, with a message."""
    name = "é" * 40
    r = srv.request("POST", "/v1/completions", {"prompt": PROMPT, name: 1})
    assert r.status == 400, r
    e = r.error()
    assert e["param"] and name.startswith(e["param"]) and e["message"], e


def test_a_model_directory_whose_name_is_not_utf8(model_dir, tmp_path):  # noqa: F811
    """The model's name is its directory's, which need not be UTF-8: every answer naming it
    became 500 "out of memory". Promised: the name with '?' for such bytes, and answers."""
    d = os.path.join(os.fsencode(tmp_path), b"m\xff")
    os.mkdir(d)
    for f in os.listdir(model_dir):
        os.symlink(os.path.join(os.fsencode(model_dir), os.fsencode(f)), os.path.join(d, os.fsencode(f)))
    with serving(model=os.fsdecode(d)) as s:
        assert s.request("GET", "/v1/models").json["data"][0]["id"] == "m?"
        r = s.request("POST", "/v1/completions", {"prompt": PROMPT, "max_tokens": 2})
        assert r.status == 200 and r.json["model"] == "m?", r


# ---------------------------------------------------------------------------------------------
# 7. Cross-site requests: Content-Type and Host


@pytest.mark.parametrize("ctype", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_a_post_that_is_not_json_is_415(srv, ctype):
    """A page on any site may POST text/plain (a CORS "simple request", no preflight): it got a
    completion. Promised: POSTs need Content-Type: application/json, else 415 with an OpenAI
    error; `application/json; charset=utf-8` is fine."""
    body = {"prompt": PROMPT, "max_tokens": 1}
    for path in ("/v1/completions", "/tokenize"):
        r = srv.request("POST", path, body if path != "/tokenize" else {"content": "a"},
                        headers={"Content-Type": ctype})
        assert r.status == 415, (path, ctype, r)
        assert r.error()["message"]
    r = srv.request("POST", "/v1/completions", body,
                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 200, r


def test_a_foreign_host_header_is_403(srv, runs_srv):
    """DNS rebinding: a page at evil.example whose name now points at 127.0.0.1 reads the API
    (Host: evil.example:PORT) and got 200. Promised: 403 for a Host that is not the bound
    address or a loopback name; localhost and 127.0.0.1 are fine."""
    for s, path in ((srv, "/v1/models"), (runs_srv, "/runs.json"), (runs_srv, "/v1/models")):
        r = s.request("GET", path, host="evil.example:%d" % s.port)
        assert r.status == 403, (path, r)
        for host in ("localhost:%d" % s.port, "127.0.0.1:%d" % s.port):
            assert s.request("GET", path, host=host).status == 200, (path, host)


def test_allowed_host_lets_a_name_in(model_dir):  # noqa: F811
    """Promised: --allowed-host evil.example lets that name in (others still 403)."""
    with serving("--allowed-host", "evil.example", model=model_dir) as s:
        assert s.request("GET", "/v1/models", host="evil.example:%d" % s.port).status == 200
        assert s.request("GET", "/v1/models", host="other.example:%d" % s.port).status == 403
        assert s.request("GET", "/v1/models", host="localhost:%d" % s.port).status == 200


# ---------------------------------------------------------------------------------------------
# 8. --runs: what reaches outside DIR, and a log that is a FIFO


def test_a_run_that_is_a_symlink_outside_is_not_served(runs_srv):
    """DIR/linkdir -> a run directory outside DIR was listed and served. Promised: neither."""
    assert names(runs_srv.request("GET", "/runs.json")) == ["good"]
    assert runs_srv.request("GET", "/runs/log?name=linkdir").status == 404
    assert runs_srv.request("GET", "/runs/log?name=good").status == 200


def test_a_log_that_is_a_symlink_outside_is_not_served(runs_srv):
    """DIR/linklog/log.jsonl -> a file outside DIR was listed and served. Promised: neither."""
    assert "linklog" not in names(runs_srv.request("GET", "/runs.json"))
    assert runs_srv.request("GET", "/runs/log?name=linklog").status == 404


def test_a_log_that_is_a_fifo_does_not_hang(tmp_path):
    """DIR/fifo/log.jsonl is a FIFO: /runs/log?name=fifo blocked in open() for ever (a thread
    and a connection gone). Promised: /runs.json and /runs/log answer (a blocked open() would
    never), the log 404."""
    d = tmp_path / "runs"
    write_log(d / "good" / "log.jsonl", records(2))
    (d / "fifo").mkdir()
    fifo = d / "fifo" / "log.jsonl"
    os.mkfifo(fifo)
    with serving("--runs", d) as s:
        try:
            try:
                assert names(s.request("GET", "/runs.json", timeout=60)) == ["good"]
                r = s.request("GET", "/runs/log?name=fifo", timeout=60)
            except socket.timeout:
                raise AssertionError("no answer within 60 s: the server blocks on the FIFO")
            assert r.status == 404, r
        finally:
            wait_for(lambda: no_reader(fifo), what="no reader left in the FIFO")


def no_reader(fifo):
    """True once nobody holds the FIFO open for reading (a writer's non-blocking open() fails
    with ENXIO); a reader stuck in open() is given a writer, then EOF."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as e:
        return e.errno == errno.ENXIO
    return False


# ---------------------------------------------------------------------------------------------
# 9. Smaller ones


def test_a_prompt_past_the_context_states_its_length(srv):
    """A 1500-token prompt on a 1024 context: the message said "the prompt has 0 tokens" (read
    after being freed). Promised: 400 whose message gives the true count."""
    prompt = " a" * 1500
    toks = srv.request("POST", "/tokenize", {"content": prompt}).json["tokens"]
    assert len(toks) == 1500
    r = srv.request("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 1})
    assert r.status == 400, r
    e = r.error()
    assert e["param"] == "prompt" and re.search(r"\b1500\b", e["message"]), e


def test_an_empty_api_key_is_refused(tmp_path):
    """`--api-key ''` started a server whose key nobody can send... or that anyone matches.
    Promised: exit status 2, one line on stderr."""
    p = subprocess.Popen([str(GPT2C), "serve", "--runs", str(tmp_path), "--port", "0", "--api-key", ""],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    guard = threading.Timer(60, p.kill)
    guard.start()
    out = p.stdout.readline().decode(errors="replace")
    if "http://" in out:
        p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=60)
    finally:
        guard.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "http://" not in out, "it started: " + out
    lines = err.decode(errors="replace").strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, (p.returncode, lines)


def test_an_unknown_run_does_not_show_the_runs_path(runs_srv, runs_dir):
    """/runs/log?name=nope's 404 told the client the --runs directory's path. Promised: not."""
    r = runs_srv.request("GET", "/runs/log?name=nope")
    assert r.status == 404 and r.error()["message"], r
    assert str(runs_dir.parent).encode() not in r.body, r


def test_head(srv):
    """HEAD /health was 405. Promised: 200 (a HEAD on a GET route); HEAD on a POST route 405."""
    assert srv.request("HEAD", "/health").status == 200
    assert srv.request("HEAD", "/v1/completions").status == 405


def test_duplicate_keys_in_tokenize(srv):
    """{"content": "a", "content": "b"} to /tokenize was taken (the last wins). Promised: 400."""
    r = srv.request("POST", "/tokenize", b'{"content": "a", "content": "b"}')
    assert r.status == 400, r
    assert r.error()["message"]
