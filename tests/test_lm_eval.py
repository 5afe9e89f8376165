"""EleutherAI's lm-evaluation-harness scores a model through `gpt2c serve` (its
`local-completions` backend, remote tokenizer) as it does through Hugging Face transformers on
the same weights: a HellaSwag-style multiple-choice task and a rolling-window perplexity task
(tests/lm_eval_tasks/), over local data, offline. The Hugging Face side is itself checked against
tests/torch_gpt2.py in float64, so that both sides are known to score what we think they score."""
import bz2
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import torch_gpt2 as ref
from conftest import ROOT, SANITIZER_MARKS
from test_serve import Server

TASKS_DIR = ROOT / "tests/lm_eval_tasks"
HELLASWAG, PERPLEXITY = "gpt2c_hellaswag_local", "gpt2c_wikitext_local"
HELLASWAG_TASKS = 40
CONTEXT = 128  # small, so that the long document takes several rolling windows
EOT = 50256
# lm-eval's API backend sends at most max_length - 1 tokens (one is kept for the generated
# token) and rolls windows of max_length - 2; Hugging Face's sends max_length + 1 less the last
# and rolls windows of max_length. So max_length=CONTEXT through the server and CONTEXT - 2
# through Hugging Face score every token with the same tokens before it.
HF_MAX_LENGTH = CONTEXT - 2
# A loglikelihood is a sum of up to a few hundred float32 token logprobs, so its rounding grows
# with it: Hugging Face against float64 here, at most 1.6e-7 of the sum (2.8e-5 on 176 nats;
# 5.3e-5 on the long document's 6,516). Two float32 sides may each be off that much: 5e-7 of the
# sum, plus 1e-4 (2e-4 on a HellaSwag choice's 190 nats).
ATOL, RTOL = 1e-4, 5e-7


def close(a, b):
    return abs(a - b) <= ATOL + RTOL * abs(b)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The model (Hugging Face directory, read by both sides), its tokenizer for transformers
    (made from data/gpt2, offline), and the tasks' JSONL, where the task YAMLs look for them."""
    d = tmp_path_factory.mktemp("lm-eval")
    model = ref.random_init(ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=CONTEXT), 5, noisy=True)
    with torch.no_grad():  # far from uniform logits: the choices' scores differ by more than rounding
        for p in model.parameters():
            p.mul_(2.0)
        # <|endoftext|> raised through ln_f's bias: it is the greedy next token after some prompts,
        # and the one token that a request generates must then be answered (and dropped) all the same
        model.wte.weight[EOT] = 10 * model.ln_f.bias
    ref.save_hf_dir(model.float(), d / "model")
    tok = d / "tokenizer"
    tok.mkdir()
    shutil.copy(ROOT / "data/gpt2/encoder.json", tok / "vocab.json")
    shutil.copy(ROOT / "data/gpt2/vocab.bpe", tok / "merges.txt")
    (tok / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "model_max_length": CONTEXT, "add_prefix_space": False,
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}))
    # llama.cpp's HellaSwag text: context, label, four endings
    lines = bz2.decompress((ROOT / "data/hellaswag/hellaswag_val_full.txt.bz2").read_bytes()).decode().split("\n")
    with open(d / "hellaswag_local.jsonl", "w") as f:
        for i in range(HELLASWAG_TASKS):
            t = lines[6 * i:6 * i + 6]
            f.write(json.dumps({"query": t[0], "choices": t[2:6], "label": int(t[1])}) + "\n")
    # one document of 567 tokens (5 windows), three short ones
    speeches = (ROOT / "data/tinyshakespeare/input.txt").read_text().split("\n\n")
    with open(d / "wikitext_local.jsonl", "w") as f:
        for page in ["\n\n".join(speeches[:20]), *speeches[20:23]]:
            f.write(json.dumps({"page": page}) + "\n")
    return d, model


def lm_eval(work_dir, name, *args):
    """Run lm-eval (both tasks, offline) in work_dir; returns (results, {task: samples by doc_id})."""
    out = work_dir / ("out-" + name)
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=str(work_dir / "hf-home"), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "lm_eval", *args, "--tasks", HELLASWAG + "," + PERPLEXITY,
           "--include_path", str(TASKS_DIR), "--log_samples", "--output_path", str(out)]
    run = subprocess.run(cmd, cwd=work_dir, env=env, capture_output=True, timeout=600)
    log = (run.stdout + run.stderr).decode(errors="replace")
    assert run.returncode == 0, log[-6000:]
    (results,) = out.glob("*/results_*.json")
    samples = {}
    for task in (HELLASWAG, PERPLEXITY):
        (path,) = out.glob("*/samples_%s_*.jsonl" % task)
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        samples[task] = {r["doc_id"]: r for r in rows}
    return json.loads(results.read_text())["results"], samples


def scores(sample):
    """A sample's (loglikelihood, is_greedy) per request, is_greedy None for a rolling one (lm-eval
    logs them as strings)."""
    return [(float(r[0]), None) if isinstance(r[0], str) else (float(r[0][0]), r[0][1]) for r in sample["resps"]]


@pytest.fixture(scope="module")
def hf(work):
    d, _ = work
    return lm_eval(d, "hf", "--model", "hf", "--device", "cpu", "--model_args",
                   "pretrained=%s,tokenizer=%s,dtype=float32,max_length=%d" % (d / "model", d / "tokenizer", HF_MAX_LENGTH))


def logprobs64(model, tokens):
    """log p(tokens[i] | tokens[:i]) for i >= 1, whether each is the greedy token, and the greedy
    next token, in float64."""
    x = torch.tensor([tokens])
    with torch.no_grad():
        lp = F.log_softmax(model(x)[0], dim=-1)
    top = lp.argmax(-1)
    return lp[:-1].gather(1, x[0, 1:, None])[:, 0], top[:-1] == x[0, 1:], int(top[-1])


def test_hugging_face_scores_what_the_reference_does(work, hf, tiktoken_gpt2):
    """Each choice's loglikelihood (context and continuation tokenized as lm-eval does) and
    greediness, and each document's rolling-window sum (an end-of-text token before the first
    window, windows of HF_MAX_LENGTH predicted tokens each after as many before), equal float64
    PyTorch's; the long document took several windows; no choice wins by less than rounding."""
    _, model = work
    model = model.double()
    enc = lambda s: tiktoken_gpt2.encode(s, allowed_special="all")
    results, samples = hf
    assert len(samples[HELLASWAG]) == HELLASWAG_TASKS and len(samples[PERPLEXITY]) == 4
    ends = 0
    for s in samples[HELLASWAG].values():
        lls = []
        for (ll, greedy), args in zip(scores(s), s["arguments"].values()):
            context, continuation = args["arg_0"], args["arg_1"]
            whole = enc(context + continuation)
            n = len(enc(context))
            lp, top, following = logprobs64(model, whole)
            ends += following == EOT
            assert close(ll, float(lp[n - 1:].sum())), (s["doc_id"], ll, float(lp[n - 1:].sum()))
            assert greedy == str(bool(top[n - 1:].all()))
            lls.append(ll)
        # acc and acc_norm rest on each task's best choice: no near-tie the rounding could flip
        lengths = [len(c) for c in s["doc"]["choices"]]
        for v in (lls, [ll / length for ll, length in zip(lls, lengths)]):
            best, second = sorted(v, reverse=True)[:2]
            assert best - second > 10 * (ATOL + RTOL * abs(best)), "ill-posed test: pick another seed"
    assert 0 < ends < 4 * HELLASWAG_TASKS / 2  # some requests generate <|endoftext|>, most not
    windows = 0
    for s in samples[PERPLEXITY].values():
        tokens = [EOT] + enc(s["doc"]["page"])
        want, start = 0.0, 1
        while start < len(tokens):
            end = min(start + HF_MAX_LENGTH, len(tokens))
            lp, _, _ = logprobs64(model, tokens[max(0, end - HF_MAX_LENGTH - 1):end])
            want += float(lp[-(end - start):].sum())
            start, windows = end, windows + 1
        assert close(scores(s)[0][0], want), (s["doc_id"], scores(s)[0][0], want)
    assert windows == 5 + 3  # the long document's five windows, one for each short one
    assert 0 <= results[HELLASWAG]["acc,none"] <= 1 and results[PERPLEXITY]["bits_per_byte,none"] > 0


@pytest.fixture(scope="module")
def server(work):
    s = Server(work[0] / "model", "--parallel", 4)
    yield s
    rc, err = s.stop()
    assert rc == 0, err
    assert not any(mark in err for mark in SANITIZER_MARKS), err


@pytest.mark.parametrize("batch_size, concurrent", [(1, 1), (4, 2)],
                         ids=["one_prompt_a_request", "four_prompts_a_request_two_at_once"])
def test_the_server_scores_what_hugging_face_does(work, hf, server, batch_size, concurrent):
    """The same accuracies and perplexities, each sample's loglikelihoods within float32 rounding
    and the same greediness: through lm-eval's defaults (one prompt a request, one request at a
    time), and with four prompts a request (one choice each, by index) and two requests at once."""
    d, _ = work
    results, samples = lm_eval(d, "serve-%d-%d" % (batch_size, concurrent), "--model", "local-completions",
                               "--batch_size", str(batch_size), "--model_args",
                               "base_url=http://127.0.0.1:%d/v1/completions,model=m,max_length=%d,"
                               "tokenizer_backend=remote,num_concurrent=%d" % (server.port, CONTEXT, concurrent))
    want_results, want_samples = hf
    for key in ("acc,none", "acc_norm,none"):
        assert results[HELLASWAG][key] == want_results[HELLASWAG][key], key
    for key in ("word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none"):
        assert math.isclose(results[PERPLEXITY][key], want_results[PERPLEXITY][key], rel_tol=1e-4), key
    for task in (HELLASWAG, PERPLEXITY):
        assert samples[task].keys() == want_samples[task].keys()
        for doc_id, s in samples[task].items():
            assert s["arguments"] == want_samples[task][doc_id]["arguments"]
            got, want = scores(s), scores(want_samples[task][doc_id])
            assert all(close(g[0], w[0]) for g, w in zip(got, want)), (task, doc_id, got, want)
            assert [g[1] for g in got] == [w[1] for w in want], (task, doc_id, got, want)
