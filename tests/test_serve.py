"""`gpt2c serve` as a client sees it, on a real server process on a free loopback port: the
official `openai` client, answers equal to `gpt2c sample` with the same seed and flags (alone and
among 16 concurrent clients), streams, a client that goes away, a full queue, bad input and
authentication, and a clean stop on SIGTERM."""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request

import openai
import pytest

import torch_gpt2 as ref
from conftest import GPT2C, SANITIZER_MARKS, assert_one_line_error, run_gpt2c, wait_for

PROMPT = "Hello, I'm a language model,"
THREADS = 2
CONTEXT = 1024  # long enough for a stream to be still running when the test acts on it


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve-model")
    cfg = ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=CONTEXT)
    ref.save_hf_dir(ref.random_init(cfg, 3, noisy=True).float(), d)
    return d


class Server:
    def __init__(self, model_dir, *flags):
        self.proc = subprocess.Popen([str(GPT2C), "serve", "--model", str(model_dir), "--port", "0",
                                      "--threads", str(THREADS), *map(str, flags)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        assert "http://" in line, line + self.proc.stderr.read().decode()
        self.url = line.split(" on ")[1].split(" ")[0]
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))

    def request(self, path, body=None, method=None, headers=None):
        """(status, headers, parsed JSON or text)"""
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
        headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                status, hdrs, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        try:
            return status, hdrs, json.loads(raw)
        except ValueError:
            return status, hdrs, raw.decode(errors="replace")

    def metrics(self):
        text = self.request("/metrics")[2]
        return {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l and l[0] != "#"}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, err.decode(errors="replace")


@pytest.fixture(scope="module")
def server(model_dir):
    s = Server(model_dir, "--parallel", 4)
    yield s
    rc, err = s.stop()
    assert rc == 0, err
    assert not any(mark in err for mark in SANITIZER_MARKS), err


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "v1", api_key="none", max_retries=0)


def sample(model_dir, n, max_tokens, seed, top_k, temperature=1.0, prompt=PROMPT, top_p=1.0):
    """`gpt2c sample`'s texts for the same model, prompt and flags (ending at <|endoftext|>, as
    the server's choices do)."""
    out = run_gpt2c("sample", "--model", model_dir, "--prompt", prompt, "--num-samples", n,
                    "--max-tokens", max_tokens, "--seed", seed, "--top-k", top_k, "--temperature", temperature,
                    "--top-p", top_p, "--threads", THREADS, "--stop-at-eot", "--json")
    return [s["text"] for s in json.loads(out.stdout)["samples"]]


def test_health_models_tokenize(server):
    assert server.request("/health")[:3:2] == (200, {"status": "ok"})
    status, _, models = server.request("/v1/models")
    assert status == 200 and models["data"][0]["object"] == "model"
    status, _, toks = server.request("/tokenize", {"content": PROMPT})
    assert toks == {"tokens": [15496, 11, 314, 1101, 257, 3303, 2746, 11]}
    assert server.request("/detokenize", toks)[2] == {"content": PROMPT, "prompt": PROMPT}
    page = server.request("/")[2]
    assert "<textarea" in page and "Generate" in page
    assert "http://" not in page and "https://" not in page  # nothing from the internet


def test_completion_equals_sample(server, client, model_dir):
    r = client.completions.create(model="m", prompt=PROMPT, max_tokens=24, seed=7,
                                  extra_body={"top_k": 50})
    assert r.object == "text_completion" and len(r.choices) == 1
    assert r.choices[0].text == sample(model_dir, 1, 24, 7, 50)[0]
    assert r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.prompt_tokens == 8 and r.usage.total_tokens == 8 + r.usage.completion_tokens


def test_greedy_equals_sample(client, model_dir):
    r = client.completions.create(model="m", prompt=PROMPT, max_tokens=20, temperature=0)
    assert r.choices[0].text == sample(model_dir, 1, 20, 42, 50, temperature=0)[0]


def test_every_token_a_candidate_equals_sample(client, model_dir):
    """An OpenAI client sends no top_k: every token is a candidate, drawn without a sort; with a
    nucleus, from the ranked tokens that reach top_p."""
    r = client.completions.create(model="m", prompt=PROMPT, max_tokens=24, seed=5)
    assert r.choices[0].text == sample(model_dir, 1, 24, 5, 50257)[0]
    r = client.completions.create(model="m", prompt=PROMPT, max_tokens=24, seed=5, top_p=0.9)
    assert r.choices[0].text == sample(model_dir, 1, 24, 5, 50257, top_p=0.9)[0]


def test_stream_equals_sample(client, model_dir):
    chunks = list(client.completions.create(model="m", prompt=PROMPT, max_tokens=24, seed=9,
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={"top_k": 40}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == sample(model_dir, 1, 24, 9, 40)[0]
    assert len([c for c in chunks if c.choices]) > 1  # it did stream
    assert chunks[-1].usage.prompt_tokens == 8 and not chunks[-1].choices


def test_n_choices_share_the_prompt_and_equal_sample(client, model_dir):
    r = client.completions.create(model="m", prompt=PROMPT, max_tokens=16, seed=3, n=3,
                                  extra_body={"top_k": 50})
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert [c.text for c in r.choices] == sample(model_dir, 3, 16, 3, 50)


def test_stop_string_cuts_the_text(client, model_dir):
    full = sample(model_dir, 1, 30, 11, 50)[0]
    stop = full[10:13]
    assert stop.strip(), "ill-posed test: pick another seed"
    r = client.completions.create(model="m", prompt=PROMPT, max_tokens=30, seed=11, stop=[stop],
                                  extra_body={"top_k": 50})
    assert r.choices[0].text == full[:full.index(stop)] and r.choices[0].finish_reason == "stop"


def test_logit_bias_forbids_end_of_text_and_logprobs(client):
    r = client.completions.create(model="m", prompt=PROMPT, max_tokens=12, seed=1, logprobs=3,
                                  logit_bias={"50256": -100})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 12 and len(lp.token_logprobs) == 12 and len(lp.top_logprobs) == 12
    assert all(p <= 0 for p in lp.token_logprobs)
    # the best 3, and the token drawn among them (OpenAI: up to logprobs + 1)
    assert all(top[tok] == p and len(top) in (3, 4) and all(v <= max(top.values()) for v in top.values())
               for tok, p, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs))
    assert "".join(lp.tokens) == r.choices[0].text and r.choices[0].finish_reason == "length"


def test_concurrent_clients_get_what_they_get_alone(server, model_dir):
    """16 clients at once on 4 slots, prompts and lengths mixed, streaming and not: short prompts
    (whose chunks share a forward), one of more than GPT2_SHORT_CHUNK tokens, and one of a long
    chunk then a short one; and what each prompt gets alone is `sample`'s."""
    fox = "The quick brown fox jumps over the lazy dog. "
    prompts = [PROMPT, "The", "Once upon a time, in a land far away, there lived", "x" * 40,
               fox * 5, fox * 52]
    counts = [len(server.request("/tokenize", {"content": p})[2]["tokens"]) for p in prompts]
    assert 32 < counts[4] < 512 and 512 < counts[5] <= 512 + 32, counts
    # the answers not streamed carry their logprobs, which show a difference in the logits' bits
    # that the sampled text would mostly hide
    reqs = [{"prompt": prompts[i % 6], "max_tokens": 5 + 3 * i, "seed": 100 + i, "top_k": 20 + i,
             "stream": i % 2 == 1, **({} if i % 2 else {"logprobs": 1})} for i in range(16)]

    def run(body):
        if not body["stream"]:
            status, _, r = server.request("/v1/completions", body)
            assert status == 200, r
            return r["choices"][0]["text"], r["choices"][0]["logprobs"]["token_logprobs"]
        req = urllib.request.Request(server.url + "v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        text = ""
        with urllib.request.urlopen(req, timeout=300) as resp:
            for line in resp:
                line = line.decode().strip()
                if line.startswith("data: ") and line != "data: [DONE]":
                    text += "".join(c["text"] for c in json.loads(line[6:])["choices"])
        return text, None

    alone = [run(b) for b in reqs]
    for b, (text, _) in list(zip(reqs, alone))[:6]:
        assert text == sample(model_dir, 1, b["max_tokens"], b["seed"], b["top_k"], prompt=b["prompt"])[0]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(run, reqs))
    assert together == alone
    assert server.request("/health")[0] == 200


def start_stream(port):
    """A raw socket with a long stream started on it (its first event read)."""
    s = socket.create_connection(("127.0.0.1", port))
    body = json.dumps({"prompt": PROMPT, "max_tokens": 100000, "stream": True,
                       "logit_bias": {"50256": -100}}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    got = b""
    while b"data: " not in got:
        got += s.recv(4096)
    return s


def test_a_client_that_goes_away_frees_its_slot(server):
    s = start_stream(server.port)
    assert server.metrics()["gpt2c_slots_active"] == 1
    s.close()
    wait_for(lambda: server.metrics()["gpt2c_slots_active"] == 0, what="the slot back")


def test_a_client_that_goes_away_before_its_answer_frees_its_slot(server):
    """Not streamed: the answer is made in one piece, and a client that leaves meanwhile is seen
    (its request stops long before the context's 1016 tokens)."""
    before = server.metrics()["gpt2c_tokens_generated_total"]
    s = socket.create_connection(("127.0.0.1", server.port))
    body = json.dumps({"prompt": PROMPT, "max_tokens": 100000, "logit_bias": {"50256": -100}}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    wait_for(lambda: server.metrics()["gpt2c_slots_active"] == 1, what="the request running")
    s.close()
    wait_for(lambda: server.metrics()["gpt2c_slots_active"] == 0, what="the slot back")
    assert server.metrics()["gpt2c_tokens_generated_total"] - before < 1016


def test_streamed_logprobs_are_the_answers(client):
    """The chunks' logprobs, put together, are the whole answer's (same seed); a token that is a
    piece of a character is keyed bytes:\\xNN in top_logprobs, as OpenAI does, none dropped."""
    # ids 100..104 are single bytes 0xa7..0xab: no character alone
    bias = {str(i): 100 for i in range(100, 105)}
    kw = dict(model="m", prompt=PROMPT, max_tokens=10, seed=5, logprobs=5, logit_bias=bias)
    whole = client.completions.create(**kw).choices[0].logprobs
    tokens, lps, tops = [], [], []
    for c in client.completions.create(stream=True, **kw):
        if c.choices and c.choices[0].logprobs:
            tokens += c.choices[0].logprobs.tokens
            lps += c.choices[0].logprobs.token_logprobs
            tops += c.choices[0].logprobs.top_logprobs
    assert (tokens, lps, tops) == (whole.tokens, whole.token_logprobs, whole.top_logprobs)
    assert all(len(t) == 5 for t in tops)  # the drawn token is among the 5 best here
    assert {k for t in tops for k in t} == {"bytes:\\x%02x" % b for b in range(0xa7, 0xac)}


BAD = [  # body, status, the field the error names
    ({"prompt": PROMPT, "max_tokens": -5}, 400, "max_tokens"),
    ({"prompt": PROMPT, "temperature": 2.5}, 400, "temperature"),
    ({"prompt": PROMPT, "n": 5}, 400, "n"),
    ({"prompt": PROMPT, "top_p": 0}, 400, "top_p"),
    ({"prompt": 5}, 400, "prompt"),
    ({"prompt": PROMPT, "stop": ["s%d" % i for i in range(17)]}, 400, "stop"),
    ({"prompt": PROMPT, "logit_bias": {"99999": 1}}, 400, "logit_bias"),
    ({"prompt": PROMPT, "logprobs": 9}, 400, "logprobs"),
    ({"prompt": PROMPT, "frequency_penalty": 0.5}, 400, "frequency_penalty"),
    ({"prompt": PROMPT, "echo": 1}, 400, "echo"),
    ({"prompt": PROMPT, "max_tokens": 0}, 400, "max_tokens"),
    ({"prompt": [[1, 2], [3, 50257]]}, 400, "prompt"),
    ({"prompt": [[1, 2], []]}, 400, "prompt"),
    ({"prompt": [[1, 2], "text"]}, 400, "prompt"),
    ({"prompt": []}, 400, "prompt"),
    ({"prompt": PROMPT, "bogus": 1}, 400, "bogus"),
    ({"prompt": PROMPT, "stream": "yes"}, 400, "stream"),
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
]


@pytest.mark.parametrize("body, status, param", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_requests_get_openai_errors(server, body, status, param):
    got, _, r = server.request("/v1/completions", body)
    assert got == status and r["error"]["param"] == param and r["error"]["message"]
    assert r["error"]["type"] == "invalid_request_error"


def test_an_id_out_of_range_names_the_prompt_and_position(server):
    """A token id out of range is a 400 that says which prompt and which position holds it (a
    list of lists: prompt[i][j]; one list: prompt[j]), and the range."""
    for body, where in (({"prompt": [[1, 2], [3, 4, 50257]]}, "prompt[1][2]"),
                        ({"prompt": [7, -1]}, "prompt[1]")):
        status, _, r = server.request("/v1/completions", dict(body, max_tokens=1))
        assert status == 400 and r["error"]["param"] == "prompt", r
        assert r["error"]["message"] == where + " must be a token id, 0..50256", r


def test_neutral_values_and_user_are_accepted(server):
    status, _, r = server.request("/v1/completions", {"prompt": PROMPT, "max_tokens": 2, "user": "u",
                                                      "frequency_penalty": 0, "presence_penalty": 0,
                                                      "echo": False, "best_of": 1, "suffix": None})
    assert status == 200 and r["choices"][0]["finish_reason"] == "length"


def raw_request(port, head, body=b""):
    """Send a request's bytes on a raw socket; the answer's status line and the rest."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(head + body)
        got = b""
        while b"\r\n\r\n" not in got:
            piece = s.recv(65536)
            if not piece:
                break
            got += piece
    return got.split(b"\r\n", 1)[0].decode(), got


def test_paths_methods_sizes_and_context(server):
    assert server.request("/nope")[0] == 404
    status, headers, _ = server.request("/health", b"", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert server.request("/v1/completions")[0] == 405
    # a declared length over 1 MiB is refused before the body; a chunked body over it at its end
    status, _ = raw_request(server.port, b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
                            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (2 << 20))
    assert " 413 " in status, status
    # a GET's body (whose bytes could trickle past the deadlines of a POST's) is refused likewise
    status, _ = raw_request(server.port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
                            b"Content-Length: 100\r\n\r\n")
    assert " 413 " in status, status
    piece = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(24)) + b"0\r\n\r\n"
    status, _ = raw_request(server.port, b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
                            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", chunks)
    assert " 413 " in status, status
    status, _, r = server.request("/v1/completions", {"prompt": PROMPT, "max_tokens": 5000, "temperature": 0,
                                                      "logit_bias": {"50256": -100}})
    assert status == 200 and r["max_tokens_capped_to"] == CONTEXT - 8
    assert r["usage"]["completion_tokens"] == CONTEXT - 8 and r["choices"][0]["finish_reason"] == "length"
    assert server.request("/health")[0] == 200


def test_full_queue_is_503_with_retry_after(model_dir):
    s = Server(model_dir, "--parallel", 1, "--max-queue", 1)
    try:
        body = {"prompt": PROMPT, "max_tokens": 300, "logit_bias": {"50256": -100}}
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: s.request("/v1/completions", body), range(6)))
        codes = sorted(r[0] for r in results)
        assert codes.count(200) >= 2 and 503 in codes, codes
        busy = [r for r in results if r[0] == 503][0]
        assert busy[1]["Retry-After"] == "1" and busy[2]["error"]["message"]
    finally:
        assert s.stop()[0] == 0


def test_api_key_and_cors(model_dir):
    s = Server(model_dir, "--api-key", "sekret", "--cors-origin", "https://example.org")
    try:
        assert s.request("/health")[0] == 200  # open
        assert s.request("/v1/models")[0] == 401
        assert s.request("/v1/models", headers={"Authorization": "Bearer wrong"})[0] == 401
        # nothing after "Bearer ", the key's length with other bytes, a prefix of it, more than it
        for given in ("Bearer ", "Bearer", "Bearer sekreT", "Bearer tekres", "Bearer sekre", "Bearer sekret2",
                      "sekret"):
            assert s.request("/v1/models", headers={"Authorization": given})[0] == 401, given
        status, hdrs, _ = s.request("/v1/models", headers={"Authorization": "Bearer sekret"})
        assert status == 200 and hdrs["Access-Control-Allow-Origin"] == "https://example.org"
        c = openai.OpenAI(base_url=s.url + "v1", api_key="sekret", max_retries=0)
        assert c.completions.create(model="m", prompt="a", max_tokens=2).choices[0].finish_reason
    finally:
        assert s.stop()[0] == 0


def test_sigterm_ends_streams_and_frees_the_port(model_dir):
    s = Server(model_dir, "--parallel", 1)
    sock = start_stream(s.port)
    rc, err = s.stop()
    assert rc == 0 and "stopping" in err
    rest = b""
    while True:  # the stream in flight was ended properly
        piece = sock.recv(65536)
        if not piece:
            break
        rest += piece
    assert b"data: [DONE]" in rest
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", s.port))
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", s.port))  # and the port can be had again
    probe.close()


def test_bad_flags_are_one_line_errors(model_dir):
    for flags in (["--parallel", "9"], ["--host", "nowhere"], ["--precision", "fp16"]):
        assert_one_line_error(run_gpt2c("serve", "--model", model_dir, "--port", 0, *flags, check=False))


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, through its chromedriver (Selenium)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    yield driver
    driver.quit()


def test_the_page_in_a_browser(server, browser):
    """Load /, type a prompt, Generate: the text streams in and grows; Stop: it ends. The
    screenshots (wide and phone width) go to GPT2C_SCREENSHOT_DIR when that is set."""
    from selenium.webdriver.common.by import By
    b = browser
    b.get(server.url)
    wait_for(lambda: "parameters" in b.find_element(By.ID, "model").text, what="the model's name")
    box = b.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys("The meaning of life is")
    b.execute_script("const s = document.getElementById('max_tokens'); s.value = 500;"
                     "s.dispatchEvent(new Event('input')); const n = document.getElementById('n');"
                     "n.value = 2; n.dispatchEvent(new Event('input'));")
    b.find_element(By.ID, "go").click()
    outs = lambda: [e.text for e in b.find_elements(By.CSS_SELECTOR, ".sample .out")]
    wait_for(lambda: len(outs()) == 2 and all(outs()), what="streamed text in both samples")
    first = sum(map(len, outs()))
    wait_for(lambda: sum(map(len, outs())) > first + 5, what="the text to grow")
    assert b.find_element(By.ID, "go").get_attribute("disabled")  # generating
    shots = os.environ.get("GPT2C_SCREENSHOT_DIR")
    if shots:
        b.save_screenshot(os.path.join(shots, "serve-page.png"))
    b.find_element(By.ID, "stop").click()
    wait_for(lambda: not b.find_element(By.ID, "go").get_attribute("disabled"), what="Generate again")
    stopped = sum(map(len, outs()))
    # Generate is enabled once the page's read loop has ended, and once the server has given the
    # streams' slots back nothing more can be sent: the text must not have grown
    wait_for(lambda: server.metrics()["gpt2c_slots_active"] == 0, what="the stopped stream's slots back")
    assert sum(map(len, outs())) == stopped
    assert stopped < 2 * 500 * 20  # it ended before its 500 tokens each
    b.set_window_size(390, 844)  # a phone: nothing wider than the screen
    assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    if shots:
        b.save_screenshot(os.path.join(shots, "serve-page-phone.png"))
