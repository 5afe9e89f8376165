"""`gpt2c serve` as a scorer, the way lm-evaluation-harness and vLLM's clients use it: echo with
prompt logprobs (against the PyTorch reference, at every position of prompts from 2 to 1023
tokens), prompts as token ids, several prompts of different lengths in one request, max_tokens 0,
the "greedy" test lm-eval makes, streams, and the tokenizer endpoints."""
import concurrent.futures
import json
import urllib.request

import pytest
import torch

import torch_gpt2 as ref
from test_serve import CONTEXT, Server

LOGPROB_TOL = 2e-5  # float32 logits of two implementations (seen: 1.9e-6 at 1023 tokens)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("scoring-model")
    cfg = ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=CONTEXT)
    m = ref.random_init(cfg, 5, noisy=True).float()
    # bigger than GPT-2's init, so that the logits are far from uniform and the best tokens clear
    with torch.no_grad():
        m.wte.weight.mul_(8)
    ref.save_hf_dir(m, d)
    return d, m


@pytest.fixture(scope="module")
def server(model):
    s = Server(model[0], "--parallel", 4)
    yield s
    rc, err = s.stop()
    assert rc == 0, err


def reference_logprobs(m, ids):
    """log softmax of the reference model's logits at every position, (len(ids), 50257)."""
    with torch.no_grad():
        logits = m(torch.tensor([ids]))[0].double()
    return torch.log_softmax(logits, dim=-1)


def complete(server, body):
    status, _, r = server.request("/v1/completions", body)
    assert status == 200, r
    return r


def token_ids(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 50257, (n,), generator=g).tolist()


def check_prompt_logprobs(lp, ids, want, k):
    """A choice's logprobs over its prompt ids against the reference's log-softmax `want`."""
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert lp["text_offset"][0] == 0
    worst = 0.0
    for i in range(1, len(ids)):
        got, top = lp["token_logprobs"][i], lp["top_logprobs"][i]
        worst = max(worst, abs(got - want[i - 1, ids[i]].item()))
        assert top[lp["tokens"][i]] == got  # the token itself, with exactly its value
        best = torch.topk(want[i - 1], k + 1).values.tolist()
        assert k <= len(top) <= k + 1
        others = sorted(top.values(), reverse=True)[:k]
        # the k best, each as the reference has it (a near tie may swap two of them)
        assert all(abs(v - b) < LOGPROB_TOL for v, b in zip(others, best)), (i, others, best)
    return worst


@pytest.mark.parametrize("n", [2, 31, 600, CONTEXT - 1])
def test_echo_scores_the_prompt_as_pytorch_does(server, model, n):
    """The prompt's logprobs at every position equal PyTorch's: short prompts (their chunk runs
    beside others'), a long one (512-token chunks, the LM head 64 rows at a time), and the
    longest that leaves room for one new token, as lm-eval sends them."""
    ids = token_ids(n, n)
    r = complete(server, {"prompt": [ids], "echo": True, "logprobs": 2, "max_tokens": 1,
                          "temperature": 0, "seed": 1234})
    (choice,) = r["choices"]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == n + 1 and len(lp["token_logprobs"]) == n + 1
    worst = check_prompt_logprobs(lp, ids, reference_logprobs(model[1], ids), 2)
    assert worst < LOGPROB_TOL, worst
    assert r["usage"] == {"prompt_tokens": n, "completion_tokens": 1, "total_tokens": n + 1}
    # the text starts with the prompt's (a character cut at its end may join the new token's)
    prompt_text = server.request("/detokenize", {"tokens": ids})[2]["prompt"]
    assert choice["text"].startswith(prompt_text.rstrip("\ufffd"))
    offsets = lp["text_offset"]
    assert offsets == sorted(offsets) and len(offsets) == n + 1


def test_max_tokens_zero_scores_and_generates_nothing(server, model):
    ids = token_ids(50, 7)
    r = complete(server, {"prompt": ids, "echo": True, "logprobs": 0, "max_tokens": 0})
    (choice,) = r["choices"]
    assert r["usage"]["completion_tokens"] == 0 and choice["finish_reason"] == "length"
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == 50
    # logprobs 0: the token's own logprob, and it alone in top_logprobs
    assert all(t == {tok: p} for tok, p, t in zip(lp["tokens"][1:], lp["token_logprobs"][1:],
                                                  lp["top_logprobs"][1:]))
    assert check_prompt_logprobs(lp, ids, reference_logprobs(model[1], ids), 0) < LOGPROB_TOL
    # the whole context can be scored when nothing is generated; one more is a 400
    full = token_ids(CONTEXT, 8)
    assert len(complete(server, {"prompt": full, "echo": True, "logprobs": 0,
                                 "max_tokens": 0})["choices"][0]["logprobs"]["tokens"]) == CONTEXT
    status, _, err = server.request("/v1/completions", {"prompt": full, "echo": True, "max_tokens": 1})
    assert status == 400 and "1024 tokens" in err["error"]["message"]


def test_echo_without_logprobs_and_text_prompts(server):
    """echo alone: the text is the prompt then the completion; "<|endoftext|>" in a text prompt is
    that token, as OpenAI and vLLM read it."""
    plain = complete(server, {"prompt": "Hello there", "max_tokens": 5, "seed": 3, "temperature": 0})
    echoed = complete(server, {"prompt": "Hello there", "max_tokens": 5, "seed": 3, "temperature": 0,
                               "echo": True})
    assert echoed["choices"][0]["text"] == "Hello there" + plain["choices"][0]["text"]
    assert echoed["choices"][0]["logprobs"] is None
    r = complete(server, {"prompt": "a<|endoftext|>b", "echo": True, "logprobs": 0, "max_tokens": 0})
    assert r["choices"][0]["logprobs"]["tokens"] == ["a", "<|endoftext|>", "b"]
    assert r["usage"]["prompt_tokens"] == 3


def test_batched_prompts_each_as_alone(server):
    """Prompts of different lengths in one request (and several requests at once, whose short
    chunks share a forward): one choice per prompt, by index, each exactly what it gets alone."""
    prompts = [token_ids(n, 100 + n) for n in (3, 17, 250, 540, 9)]
    body = lambda p: {"prompt": p, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}
    alone = [complete(server, body([p]))["choices"][0] for p in prompts]
    together = complete(server, body(prompts))["choices"]
    assert [c["index"] for c in together] == list(range(len(prompts)))
    strip = lambda c: {k: v for k, v in c.items() if k != "index"}
    assert [strip(c) for c in together] == [strip(c) for c in alone]
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        each = list(pool.map(lambda p: complete(server, body([p]))["choices"][0], prompts))
    assert each == alone
    # n choices per prompt: index = prompt * n + choice
    r = complete(server, {"prompt": prompts[:2], "n": 2, "max_tokens": 3, "echo": True, "seed": 1})
    assert [c["index"] for c in r["choices"]] == [0, 1, 2, 3]


def test_greedy_test_as_lm_eval_makes_it(server):
    """lm-eval calls a continuation greedy when each of its tokens' logprob is the best in
    top_logprobs: true for what the model generated greedily, false with a token changed."""
    ids = token_ids(20, 11)
    gen = complete(server, {"prompt": [ids], "max_tokens": 6, "temperature": 0, "logprobs": 1,
                            "logit_bias": {"50256": -100}})["choices"][0]["logprobs"]
    cont = [server.request("/tokenize", {"prompt": t})[2]["tokens"] for t in gen["tokens"]]
    assert all(len(c) == 1 for c in cont), cont
    cont = [c[0] for c in cont]

    def greedy(continuation):
        lp = complete(server, {"prompt": [ids + continuation], "echo": True, "logprobs": 1,
                               "max_tokens": 0})["choices"][0]["logprobs"]
        return all(p == max(top.values()) for p, top in
                   zip(lp["token_logprobs"][20:], lp["top_logprobs"][20:]))

    assert greedy(cont)
    assert not greedy(cont[:-1] + [(cont[-1] + 1) % 50256])


def test_streamed_echo_is_the_whole_answer(server):
    body = {"prompt": [token_ids(40, 3)], "echo": True, "logprobs": 1, "max_tokens": 8, "seed": 9}
    whole = complete(server, body)["choices"][0]
    req = urllib.request.Request(server.url + "v1/completions",
                                 data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"Content-Type": "application/json"})
    text, tokens, lps = "", [], []
    with urllib.request.urlopen(req, timeout=300) as resp:
        for line in resp:
            line = line.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                for c in json.loads(line[6:])["choices"]:
                    text += c["text"]
                    if c["logprobs"]:
                        tokens += c["logprobs"]["tokens"]
                        lps += c["logprobs"]["token_logprobs"]
    assert text == whole["text"]
    assert (tokens, lps) == (whole["logprobs"]["tokens"], whole["logprobs"]["token_logprobs"])


def test_tokenizer_endpoints_both_shapes(server):
    """vLLM's shapes (which lm-eval's remote tokenizer uses) beside llama.cpp's."""
    status, _, info = server.request("/tokenizer_info")
    assert status == 200 and info["eos_token"] == "<|endoftext|>"
    assert info["max_model_len"] == CONTEXT == info["model_max_length"]
    r = server.request("/tokenize", {"prompt": "Hello world", "add_special_tokens": False})[2]
    assert r == {"tokens": [15496, 995], "count": 2, "max_model_len": CONTEXT}
    assert server.request("/tokenize", {"prompt": "<|endoftext|>"})[2]["tokens"] == [50256]
    assert server.request("/tokenize", {"content": "Hello world"})[2] == {"tokens": [15496, 995]}
    assert server.request("/detokenize", {"tokens": [15496, 995], "model": "m"})[2] == \
        {"content": "Hello world", "prompt": "Hello world"}
    # a piece of a character decodes to U+FFFD, as Hugging Face's tokenizer does
    assert server.request("/detokenize", {"tokens": [100]})[2]["prompt"] == "\ufffd"
    for body in ({"prompt": 5}, {"content": "a", "prompt": "b"}, {"prompt": "a", "x": 1},
                 {"prompt": "a", "add_special_tokens": "no"}):
        assert server.request("/tokenize", body)[0] == 400, body
    assert server.request("/detokenize", {"tokens": [50257]})[0] == 400
