"""`gpt2c sample` against the PyTorch reference (tests/torch_gpt2.py): greedy continuations token
for token, sampling's reproducibility, the sliding context window, the output formats and bad
input. The model is a tiny random GPT-2 with its weights scaled up, so that its logits are far
from uniform and greedy choices are not near-ties (asserted: every reference step's top-2 margin
is checked)."""
import json

import pytest
import torch

import torch_gpt2 as ref
from conftest import assert_one_line_error, run_gpt2c

PROMPT = "Hello, I'm a language model,"
PROMPT_IDS = [15496, 11, 314, 1101, 257, 3303, 2746, 11]
EOT = 50256
MARGIN = 1e-3  # smallest top-2 logit gap for a greedy step to be well defined in float32


def sample_json(model_dir, *flags, prompt=PROMPT):
    args = ["sample", "--model", model_dir, "--json", "--threads", 2, *flags]
    if prompt is not None:
        args += ["--prompt", prompt]
    return json.loads(run_gpt2c(*args).stdout)


def make_model(n_positions=64, seed=5):
    cfg = ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=n_positions)
    model = ref.random_init(cfg, seed, noisy=True)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(6.0)
    return model.double()


def greedy_reference(model, ids, steps, keep=None):
    """Argmax continuation by full recomputation. With keep set, the context slides as gpt2c's
    cache does: once it holds n_positions tokens, it restarts from the last `keep` tokens."""
    ids = list(ids)
    start = 0
    held = len(ids)  # tokens in the cache
    out = []
    for _ in range(steps):
        with torch.no_grad():
            logits = model(torch.tensor([ids[start:]]))[0, -1]
        top2 = torch.topk(logits, 2).values
        assert top2[0] - top2[1] > MARGIN, "ill-posed test: a near-tie in the reference"
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        ids.append(nxt)
        if keep is not None and held == model.cfg.n_positions:
            start, held = len(ids) - 1 - keep, keep
        held += 1
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    ref.save_hf_dir(make_model().float(), d)
    return d


@pytest.fixture(scope="module")
def reference():
    return make_model()


def test_prompt_ids_are_gpt2s(model_dir):
    assert sample_json(model_dir, "--max-tokens", 1)["prompt_ids"] == PROMPT_IDS


@pytest.mark.every_cpu_path
def test_greedy_equals_torch_argmax(model_dir, reference):
    got = sample_json(model_dir, "--temperature", 0, "--num-samples", 3, "--max-tokens", 24)
    want = greedy_reference(reference, PROMPT_IDS, 24)
    assert [s["ids"] for s in got["samples"]] == [want] * 3


def test_top_k_1_is_greedy_at_any_temperature(model_dir):
    greedy = sample_json(model_dir, "--temperature", 0, "--num-samples", 1, "--max-tokens", 12)
    for temperature in (0.5, 1, 3):
        got = sample_json(model_dir, "--top-k", 1, "--temperature", temperature, "--num-samples", 2,
                          "--max-tokens", 12, "--seed", 9)
        assert [s["ids"] for s in got["samples"]] == [greedy["samples"][0]["ids"]] * 2


def test_same_seed_same_samples(model_dir):
    a = sample_json(model_dir, "--seed", 3, "--max-tokens", 16)
    b = sample_json(model_dir, "--seed", 3, "--max-tokens", 16)
    c = sample_json(model_dir, "--seed", 4, "--max-tokens", 16)
    assert a == b
    assert a != c
    assert len({tuple(s["ids"]) for s in a["samples"]}) > 1  # the samples of a batch differ


def test_empty_prompt_starts_from_endoftext(model_dir, reference):
    got = sample_json(model_dir, "--temperature", 0, "--num-samples", 1, "--max-tokens", 10, prompt="")
    assert got["prompt_ids"] == []
    assert got["samples"][0]["ids"] == greedy_reference(reference, [EOT], 10)


def test_context_window_slides(tmp_path):
    model = make_model(n_positions=32, seed=8)
    ref.save_hf_dir(model.float(), tmp_path)
    out = run_gpt2c("sample", "--model", tmp_path, "--json", "--temperature", 0, "--num-samples", 2,
                    "--max-tokens", 60, "--prompt", PROMPT)
    notes = out.stderr.decode().count("window slides")
    assert notes == 1
    got = json.loads(out.stdout)["samples"]
    assert [s["ids"] for s in got] == [greedy_reference(model, PROMPT_IDS, 60, keep=16)] * 2


def test_long_prompt_keeps_its_end(tmp_path):
    model = make_model(n_positions=32, seed=8)
    ref.save_hf_dir(model.float(), tmp_path)
    text = " ".join("word%d" % i for i in range(40))
    out = run_gpt2c("sample", "--model", tmp_path, "--json", "--temperature", 0, "--num-samples", 1,
                    "--max-tokens", 5, "--prompt", text)
    assert "only its last 32 are used" in out.stderr.decode()
    got = json.loads(out.stdout)
    assert got["samples"][0]["ids"] == greedy_reference(model, got["prompt_ids"][-32:], 5, keep=16)


def test_stop_at_eot(model_dir):
    got = sample_json(model_dir, "--stop-at-eot", "--max-tokens", 40, "--temperature", 2.0, "--seed", 1)
    for s in got["samples"]:
        assert EOT not in s["ids"][:-1]
        assert len(s["ids"]) == 40 or s["ids"][-1] == EOT


def test_text_output_streams_prompt_and_continuation(model_dir):
    greedy = sample_json(model_dir, "--temperature", 0, "--num-samples", 1, "--max-tokens", 8)
    out = run_gpt2c("sample", "--model", model_dir, "--temperature", 0, "--num-samples", 1,
                    "--max-tokens", 8, "--prompt", PROMPT, "--threads", 2)
    assert out.stdout.decode() == PROMPT + greedy["samples"][0]["text"] + "\n"
    several = run_gpt2c("sample", "--model", model_dir, "--temperature", 0, "--num-samples", 3,
                        "--max-tokens", 8, "--prompt", PROMPT, "--threads", 2).stdout.decode()
    expected = "".join("[%d] %s\n" % (i + 1, line)
                       for i in range(3) for line in (PROMPT + greedy["samples"][0]["text"]).split("\n"))
    assert sorted(several.splitlines()) == sorted(expected.splitlines())
    assert "tokens/s" in out.stderr.decode()


def test_prompt_from_file_and_stdin(model_dir, tmp_path):
    (tmp_path / "p.txt").write_text(PROMPT)
    a = json.loads(run_gpt2c("sample", "--model", model_dir, "--json", "--prompt-file", tmp_path / "p.txt",
                             "--max-tokens", 4).stdout)
    b = json.loads(run_gpt2c("sample", "--model", model_dir, "--json", "--max-tokens", 4,
                             input=PROMPT.encode()).stdout)
    assert a["prompt_ids"] == b["prompt_ids"] == PROMPT_IDS
    assert a == b


BAD = {
    "missing model dir": lambda d, t: ["--model", t / "nope"],
    "vocab mismatch": lambda d, t: ["--model", broken_vocab(d, t)],
    "top-k 0": lambda d, t: ["--model", d, "--top-k", 0],
    "top-k negative": lambda d, t: ["--model", d, "--top-k", -3],
    "top-p 0": lambda d, t: ["--model", d, "--top-p", 0],
    "top-p above 1": lambda d, t: ["--model", d, "--top-p", 1.5],
    "temperature negative": lambda d, t: ["--model", d, "--temperature", -1],
    "max-tokens absurd": lambda d, t: ["--model", d, "--max-tokens", 10 ** 12],
    "prompt and prompt-file": lambda d, t: ["--model", d, "--prompt-file", t / "x"],
    "precision fp16": lambda d, t: ["--model", d, "--precision", "fp16"],
    "device tpu": lambda d, t: ["--model", d, "--device", "tpu"],
}


def broken_vocab(model_dir, tmp_path):
    import shutil
    d = tmp_path / "badvocab"
    shutil.copytree(model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["vocab_size"] = 50000
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_error(model_dir, tmp_path, case):
    out = run_gpt2c("sample", "--prompt", PROMPT, "--max-tokens", 2, *BAD[case](model_dir, tmp_path),
                    check=False)
    assert_one_line_error(out)


def test_train_prints_the_same_samples(model_dir, tmp_path, tiktoken_gpt2):
    """`gpt2c train --sample-every` draws with the same sampler as `gpt2c sample` (4 samples, 32
    tokens, top-k 50, seed 42): at step 0 of a 1-step run the weights are the initial ones."""
    import numpy as np
    tokens = np.arange(2000, 2000 + 600, dtype=np.uint16)
    ref.write_shard(tmp_path / "train_000000.bin", tokens)
    out = run_gpt2c("train", "--model", model_dir, "--data", tmp_path / "train_*.bin", "--out-dir", tmp_path / "run",
                    "--batch-size", 2, "--seq-len", 16, "--max-steps", 1, "--val-every", 0,
                    "--sample-every", 5, "--sample-prompt", PROMPT, "--threads", 2).stdout
    want = sample_json(model_dir, "--num-samples", 4, "--max-tokens", 32, "--top-k", 50, "--seed", 42)
    for i, s in enumerate(want["samples"]):
        line = b"step     0 | sample %d: " % (i + 1) + PROMPT.encode() + tiktoken_gpt2.decode_bytes(s["ids"]) + b"\n"
        assert line in out


def bf16(t):
    return t.to(torch.bfloat16).to(t.dtype)


class Bf16Reference(torch.nn.Module):
    """The reference GPT-2 computing as `--precision bf16` does: every matmul of a linear layer and
    of the LM head takes bf16-rounded inputs (weights and activations) and accumulates in float64
    here; embeddings, LayerNorm, attention and GELU stay as they are."""

    def __init__(self, model):
        super().__init__()
        self.m = model
        for module in model.modules():
            if isinstance(module, ref.Conv1D):
                module.weight.data = bf16(module.weight.data)
                module.register_forward_pre_hook(lambda mod, args: (bf16(args[0]),))
        self.cfg = model.cfg

    def forward(self, idx):
        m = self.m
        x = m.wte(idx) + m.wpe(torch.arange(idx.shape[1]))
        for block in m.h:
            x = block(x)
        return bf16(m.ln_f(x)) @ bf16(m.wte.weight).t()


@pytest.mark.every_cpu_path
def test_bf16_weights_follow_fp32(model_dir):
    """--precision bf16 (weights and matmul inputs rounded to bf16, fp32 accumulation): greedy
    decoding equals the reference computing the same way (each step with a clear winner), and
    sampling is as deterministic as in fp32."""
    got = sample_json(model_dir, "--precision", "bf16", "--temperature", 0, "--num-samples", 2,
                      "--max-tokens", 24)
    want = greedy_reference(Bf16Reference(make_model().float().double()), PROMPT_IDS, 24)
    assert [s["ids"] for s in got["samples"]] == [want] * 2
    fp32 = sample_json(model_dir, "--temperature", 0, "--num-samples", 1, "--max-tokens", 24)
    assert fp32["samples"][0]["ids"] != want  # this model's greedy path does notice the rounding
    a = sample_json(model_dir, "--precision", "bf16", "--seed", 3, "--max-tokens", 16)
    assert a == sample_json(model_dir, "--precision", "bf16", "--seed", 3, "--max-tokens", 16)
