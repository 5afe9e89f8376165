"""HellaSwag (`gpt2c eval --hellaswag`, `gpt2c train --hellaswag`) against a PyTorch
implementation of build-nanogpt's completion-style method, on the same small model and the first
few hundred examples of the shipped set: the same choice per example, both rules."""
import bz2
import json

import pytest
import torch
import torch.nn.functional as F

import torch_gpt2 as ref
from conftest import ROOT, assert_ok, assert_one_line_error, run_gpt2c
from test_dist import MPIRUN, mpirun

HELLASWAG = ROOT / "data/hellaswag/hellaswag_val_full.txt.bz2"
LIMIT = 200


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hellaswag-model")
    cfg = ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=512)
    model = ref.random_init(cfg, 5, noisy=True)
    with torch.no_grad():  # far from uniform logits: endings' losses differ by more than noise
        for p in model.parameters():
            p.mul_(4.0)
    ref.save_hf_dir(model.float(), d)
    return d, model


def examples(limit):
    """(ctx, endings, label) of the first `limit` tasks of llama.cpp's 6-line text."""
    lines = bz2.decompress(HELLASWAG.read_bytes()).decode().split("\n")
    return [(lines[6 * i], lines[6 * i + 2:6 * i + 6], int(lines[6 * i + 1])) for i in range(limit)]


def torch_choices(model, enc, tasks):
    """build-nanogpt's render_example + most likely row, in float64, one row at a time (no
    padding): (pred, pred_norm, margin) per example, margin the smaller of the two rules' gaps
    between the best and the second row, relative to the loss."""
    model = model.double()
    out = []
    with torch.no_grad():
        for ctx, endings, _ in tasks:
            ctx_tokens = enc.encode_ordinary(ctx)
            sums, means = [], []
            for end in endings:
                end_tokens = enc.encode_ordinary(" " + end)
                row = torch.tensor([ctx_tokens + end_tokens])
                # the ending's tokens, each predicted from the row before it; the context's own
                # predictions (the method masks them out) are not computed: the LM head over
                # them was most of this reference's time
                n = len(ctx_tokens)
                logits = model.hidden(row)[0, n - 1:-1] @ model.wte.weight.t()
                s = float(F.cross_entropy(logits, row[0, n:], reduction="sum"))
                sums.append(s), means.append(s / len(end_tokens))
            gaps = []
            for v in (sums, means):
                o = sorted(v)
                gaps.append((o[1] - o[0]) / max(abs(o[0]), 1e-9))
            out.append((min(range(4), key=sums.__getitem__), min(range(4), key=means.__getitem__), min(gaps)))
    return out


def hellaswag(model_dir, path, *flags):
    got = run_gpt2c("eval", "--model", model_dir, "--hellaswag", path, "--threads", 2, "--json", *flags)
    return json.loads(got.stdout)["hellaswag"]


def test_choices_equal_pytorch(model_dir, tiktoken_gpt2):
    d, model = model_dir
    got = hellaswag(d, HELLASWAG, "--limit", LIMIT)
    tasks = examples(LIMIT)
    want = torch_choices(model, tiktoken_gpt2, tasks)
    assert got["n"] == LIMIT and got["label"] == [t[2] for t in tasks]
    # a choice within float32's noise of a tie may go either way; there must be few of those
    clear = [i for i, w in enumerate(want) if w[2] > 1e-5]
    assert len(clear) >= 0.97 * LIMIT, len(clear)
    assert [got["pred"][i] for i in clear] == [want[i][0] for i in clear]
    assert [got["pred_norm"][i] for i in clear] == [want[i][1] for i in clear]
    assert got["correct"] == sum(p == t[2] for p, t in zip(got["pred"], tasks))
    assert got["correct_norm"] == sum(p == t[2] for p, t in zip(got["pred_norm"], tasks))
    assert got["acc_norm"] == pytest.approx(got["correct_norm"] / LIMIT)


def test_jsonl_and_plain_text_read_the_same(model_dir, tmp_path):
    """The original jsonl (ctx, endings, label) and the uncompressed text give the .bz2's choices."""
    d, _ = model_dir
    tasks = examples(20)  # no reader sees more in 40: none of the first 40 has a quote, tab or non-ASCII
    jsonl = tmp_path / "val.jsonl"
    jsonl.write_text("".join(json.dumps({"ctx": c, "endings": e, "label": l, "ind": i}) + "\n"
                             for i, (c, e, l) in enumerate(tasks)))
    text = tmp_path / "val.txt"
    text.write_text("".join(f"{c}\n{l}\n" + "".join(x + "\n" for x in e) for c, e, l in tasks))
    want = hellaswag(d, HELLASWAG, "--limit", 20)
    for path in (jsonl, text):
        got = hellaswag(d, path)
        assert (got["pred"], got["pred_norm"], got["label"]) == (want["pred"], want["pred_norm"], want["label"])


@pytest.mark.parametrize("content, message", [
    ("just one line of prose", "neither HellaSwag jsonl nor"),
    ("context\n7\na\nb\nc\nd\n", "the label must be 0-3"),
    ("context\n1\na\nb\n", "cut short"),
    ('{"ctx": "x", "endings": ["a", "b"], "label": 0}\n', "not a HellaSwag example"),
    ('{"ctx": "x", \n', "line 1"),
    ("", "no examples"),
    (b"BZh91AY&SY garbage", "bzip2"),
])
def test_bad_files_are_one_line_errors(model_dir, tmp_path, content, message):
    d, _ = model_dir
    f = tmp_path / "bad"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = run_gpt2c("eval", "--model", d, "--hellaswag", f, check=False)
    assert_one_line_error(out)
    assert message in out.stderr.decode(), out.stderr.decode()


def test_a_plan_that_does_not_fit_is_refused_as_every_plan_is(shard, tmp_path):
    """HellaSwag's plan (32 rows as long as the longest example) goes through the memory check
    that eval's and train's own plans go through. A model of 256 layers 64 wide (80 MB of
    weights) with 65,536 positions, and an example as long as its context: rows that need some
    2 TB, refused before anything is allocated, by `eval --hellaswag` and by `train
    --hellaswag` (from the same directory), with the one-line "needs N GB ... available"."""
    hs = tmp_path / "long.jsonl"  # the context is cut to the model's 65,536 positions
    hs.write_text(json.dumps({"ctx": "a" + " a" * 70000, "endings": ["b", "c", "d", "e"], "label": 0}) + "\n")
    deep = tmp_path / "deep"
    ref.save_hf_dir(ref.random_init(ref.Config(n_layer=256, n_head=2, n_embd=64, n_positions=65536), 1), deep)
    evaluated = run_gpt2c("eval", "--model", deep, "--hellaswag", hs, "--threads", 1, check=False)
    trained = run_gpt2c("train", "--model", deep, "--data", shard / "train_*.bin", "--out-dir", tmp_path / "run",
                        "--batch-size", 2, "--seq-len", 32, "--total-batch-size", 64, "--max-steps", 1,
                        "--val-every", 0, "--hellaswag", hs, "--threads", 1, check=False)
    for out in evaluated, trained:
        assert_one_line_error(out)
        err = out.stderr.decode()
        assert "HellaSwag's batch 32 x 65536 needs" in err and "GB available" in err, err


def train_log(tmp_path, name, shard, hs, ranks=0):
    out = tmp_path / name
    args = ["train", "--model", "d2", "--max-seq-len", 64, "--data", shard / "train_*.bin",
            "--out-dir", out, "--batch-size", 2, "--seq-len", 32, "--total-batch-size", 128,
            "--max-steps", 3, "--val-every", 0, "--hellaswag", hs, "--hellaswag-every", 2,
            "--threads", 1]
    got = assert_ok(mpirun(ranks, *args)) if ranks else run_gpt2c(*args)
    recs = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    return [r for r in recs if "hellaswag_acc_norm" in r], got.stdout.decode()


def test_train_scores_hellaswag_in_the_loop(shard, tmp_path):
    """Every N steps and at the last, logged and printed; under 2 ranks (the examples split,
    the counts summed, the same batches) the same records as one process."""
    tasks = examples(30)
    hs = tmp_path / "hs.txt"
    hs.write_text("".join(f"{c}\n{l}\n" + "".join(x + "\n" for x in e) for c, e, l in tasks))
    one, printed = train_log(tmp_path, "one", shard, hs)
    assert [r["step"] for r in one] == [0, 2]  # step 2 the last, as step 4 of 5 would be
    assert all(r["hellaswag_n"] == 30 and 0 <= r["hellaswag_acc_norm"] <= 1 for r in one)
    assert all(abs(r["hellaswag_acc_norm"] * 30 - round(r["hellaswag_acc_norm"] * 30)) < 1e-6 for r in one)
    assert "hellaswag acc_norm" in printed
    if MPIRUN:
        two, _ = train_log(tmp_path, "two", shard, hs, ranks=2)
        assert [r["step"] for r in two] == [r["step"] for r in one]
        for a, b in zip(one, two):  # the weights agree to float tolerance: a near-tie may flip
            assert abs(a["hellaswag_acc_norm"] - b["hellaswag_acc_norm"]) <= 1.5 / 30, (a, b)


def test_eval_precision(model_dir, shard):
    """`eval --precision bf16` (the matmuls take bf16-rounded inputs) gives fp32's loss and
    HellaSwag choices within bf16's rounding, and not fp32's bits (the bf16 path really ran); the
    default on the CPU is fp32 itself; a precision that is neither is a one-line error."""
    d, _ = model_dir

    def evaluate(*precision):
        out = run_gpt2c("eval", "--model", d, "--data", shard / "val_*.bin", "--batch-size", 2,
                     "--seq-len", 32, "--steps", 2, "--hellaswag", HELLASWAG, "--limit", 40,
                     "--threads", 2, "--json", *precision)
        return json.loads(out.stdout)

    default, fp32, bf16 = evaluate(), evaluate("--precision", "fp32"), evaluate("--precision", "bf16")
    assert default == fp32
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=2e-3) and bf16["loss"] != fp32["loss"]
    same = sum(a == b for a, b in zip(bf16["hellaswag"]["pred_norm"], fp32["hellaswag"]["pred_norm"]))
    assert same >= 0.9 * 40, same
    out = run_gpt2c("eval", "--model", d, "--data", shard / "val_*.bin", "--precision", "fp16",
                    check=False)
    assert_one_line_error(out)
    assert "--precision must be fp32 or bf16, not 'fp16'" in out.stderr.decode(), out.stderr.decode()
