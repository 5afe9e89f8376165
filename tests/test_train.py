"""`gpt2c train` and `gpt2c eval` against the PyTorch reference in tests/torch_gpt2.py.

The reference starts from the same weights (passed through a Hugging Face directory) and reads the
same shards; it runs in float64, so each tolerance below measures gpt2c's own float32 rounding.
Calibration (the reference in float32 against itself in float64, this file's config and recipe, init
seeds 1-5, 20 steps): loss and val_loss differ by at most 1.0e-6, the gradient norm by 9.4e-8
relative, the final weights by at most 5.4e-6 (a few elements whose gradient is nearly zero, so that
Adam's normalised update is dominated by rounding) and by 7.3e-9 RMS over all parameters; the key
part of c_attn.bias is apart (see key_bias_split). gpt2c's first CPU version gave 9.2e-7, 9.3e-8,
5.8e-6 and 6.6e-9. The tolerances sit 3-10 times above that and below what small recipe bugs give
(measured by mutating the reference): GELU without the tanh approximation moves the weights by
7e-5 max / 1.1e-7 RMS while the losses move only 1.5e-6; weight decay on every tensor 1.5e-3 /
1.2e-5; clipping off 8.5e-3; beta2 0.999 4.5e-3.
"""
import glob
import hashlib
import io
import json
import logging
import math
import os
import shutil
import struct
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import torch_gpt2 as ref
from conftest import BUILD, GPT2C, ROOT, assert_one_line_error, run_gpt2c

SHAKESPEARE = ROOT / "data/tinyshakespeare/input.txt"
EOT = 50256
TINY = ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=64)

# The recipe of the comparison with torch: gradient accumulation 2 (B*T = 64, 128 tokens a step),
# warmup then cosine decay, clipping at 1.6 (the norms run from about 1.3 to 2.2: active in some
# steps only, asserted below), validation every 5 steps and at the last.
RECIPE = dict(batch_size=2, seq_len=32, total_batch_size=128, max_steps=20, warmup_steps=5, lr=1e-3,
              min_lr_ratio=0.1, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.6,
              val_every=5, val_steps=2)

LOSS_ATOL = 1e-5      # loss and val_loss (values about 10)
NORM_RTOL = 2e-6      # gradient norm, relative
LR_RTOL = 1e-6        # the schedule is closed-form; float32 arithmetic would give 6e-8
WEIGHT_ATOL = 2e-5    # final weights, largest element difference
WEIGHT_RMS = 5e-8     # final weights, root mean square of the differences over all parameters
KEY_BIAS_ATOL = 1e-3  # the key part of c_attn.bias: its true gradient is zero (see key_bias_split)
EVAL_ATOL = 1e-5      # gpt2c eval / transformers / reference on the same weights and batches



# ---------------------------------------------------------------------------------------------
# Running gpt2c

@pytest.fixture(scope="session", autouse=True)
def binary_exists():
    assert GPT2C.exists(), "%s is missing: build gpt2c first (or set GPT2C_BUILD_DIR)" % GPT2C


def train_cmd(model, data, val, out_dir, **flags):
    """`gpt2c train` with every recipe flag spelled out; keyword flags override RECIPE (True means a
    bare flag, None leaves the flag out)."""
    all_flags = dict(RECIPE, ckpt_every=10, seed=1337, threads=2)
    all_flags.update(flags)
    cmd = ["train", "--model", model, "--data", data, "--val-data", val, "--out-dir", out_dir]
    for name, value in all_flags.items():
        if value is None or value is False:
            continue
        cmd.append("--" + name.replace("_", "-"))
        if value is not True:
            cmd.append(value)
    return cmd


def eval_cmd(model, data, batch_size=2, seq_len=32, steps=2):
    return ["eval", "--model", model, "--data", data, "--batch-size", batch_size, "--seq-len", seq_len,
            "--steps", steps, "--json", "--threads", 2]


def eval_loss(model_dir, data, **kw):
    out = run_gpt2c(*eval_cmd(model_dir, data, **kw))
    lines = [line for line in out.stdout.decode().splitlines() if line.strip()]
    return json.loads(lines[-1])["loss"]


def read_log(out_dir):
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines() if line.strip()]


def train_records(log):
    return [r for r in log if "loss" in r]


def val_records(log):
    return [r for r in log if "val_loss" in r]


def without_timing(log):
    return [{k: v for k, v in r.items() if k not in ("dt_ms", "tok_s")} for r in log]


def read_weights(model_dir):
    from safetensors.torch import load_file
    return load_file(str(model_dir / "model.safetensors"))


def reference_args(data, val, **over):
    return ref.TrainArgs(sorted(glob.glob(data)), sorted(glob.glob(val)), **dict(RECIPE, **over))


# ---------------------------------------------------------------------------------------------
# Shared inputs: shards of real tokens and a tiny model with non-trivial weights

@pytest.fixture(scope="session")
def data(tmp_path_factory, tiktoken_gpt2):
    """Two train shards of 700 and 450 tokens (neither a multiple of a batch, so each ends with
    tokens that are skipped; 20 steps of 128 tokens go round both twice), a val shard, and two
    "aligned" shards of 5*128+1 and 4*128+1 tokens on which B=2 and B=4 read the same tokens."""
    tokens = [EOT] + tiktoken_gpt2.encode_ordinary(SHAKESPEARE.read_text()[:40000])
    d = tmp_path_factory.mktemp("shards")
    (d / "aligned").mkdir()
    ref.write_shard(d / "train_000000.bin", tokens[0:700])
    ref.write_shard(d / "train_000001.bin", tokens[700:1150])
    ref.write_shard(d / "val_000000.bin", tokens[5000:5300])
    ref.write_shard(d / "aligned" / "train_000000.bin", tokens[1200:1841])
    ref.write_shard(d / "aligned" / "train_000001.bin", tokens[2000:2513])
    return SimpleNamespace(dir=d, train=str(d / "train_*.bin"), val=str(d / "val_*.bin"),
                           aligned=str(d / "aligned" / "train_*.bin"))


@pytest.fixture(scope="session")
def init_dir(tmp_path_factory):
    """GPT-2 init with random biases and LayerNorm parameters, as a Hugging Face directory (fp32)."""
    d = tmp_path_factory.mktemp("init")
    ref.save_hf_dir(ref.random_init(TINY, seed=1, noisy=True), d)
    return d


def shards_visited(pattern, B, T, batches):
    loader = ref.DataLoaderLite(B, T, sorted(glob.glob(pattern)))
    visited = []
    for _ in range(batches):
        visited.append(loader.current_shard)
        loader.next_batch()
    return visited


# ---------------------------------------------------------------------------------------------
# a) The same run in gpt2c and in the reference

def torch_reference(init_dir, data):
    """The float64 reference of the comparison run: (final parameters, records). Nothing in it
    depends on the CPU level, so this file's plain run and the py_cpu_path_* entries share one,
    kept in the build directory with the SHA-256 of everything it is computed from (this file,
    torch_gpt2.py, torch's version, the initial weights and the shards): a change to any of
    them computes it anew."""
    h = hashlib.sha256(torch.__version__.encode())
    for path in [Path(__file__), Path(ref.__file__), *sorted(Path(init_dir).iterdir()),
                 *sorted(map(Path, glob.glob(data.train) + glob.glob(data.val)))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    cache = BUILD / "test_train_torch_reference.pt"
    try:
        saved = torch.load(cache)
        if saved["key"] == h.hexdigest():
            return saved["params"], saved["records"]
    except Exception:  # none yet, or another key's: computed below
        pass
    model = ref.load_hf_dir(init_dir).double()
    records = ref.train(model, reference_args(data.train, data.val))
    params = {name: p.detach() for name, p in model.named_parameters()}
    try:
        part = cache.with_name("%s.%d" % (cache.name, os.getpid()))
        torch.save(dict(key=h.hexdigest(), params=params, records=records), part)
        os.replace(part, cache)  # whole or not at all for an entry running beside this one
    except Exception:  # a build directory not writable: no sharing, the same comparison
        pass
    return params, records


@pytest.fixture(scope="module")
def versus_torch(tmp_path_factory, data, init_dir):
    out_dir = tmp_path_factory.mktemp("versus_torch") / "run"
    run_gpt2c(*train_cmd(init_dir, data.train, data.val, out_dir))
    params, records = torch_reference(init_dir, data)
    return SimpleNamespace(out_dir=out_dir, log=read_log(out_dir), records=records, params=params)


def test_recipe_goes_through_both_shards_and_back(data):
    """The comparison's premise: the loader reads both train shards and wraps to the first."""
    visited = shards_visited(data.train, RECIPE["batch_size"], RECIPE["seq_len"], 2 * RECIPE["max_steps"])
    assert visited[0] == 0 and 1 in visited and visited[visited.index(1):].count(0) > 0


@pytest.mark.every_cpu_path
def test_per_step_loss_lr_norm_match_torch(versus_torch):
    got, want = train_records(versus_torch.log), train_records(versus_torch.records)
    norms = [r["norm"] for r in want]
    clip = RECIPE["grad_clip"]
    assert any(n > clip for n in norms) and any(n < clip for n in norms), norms
    assert [r["step"] for r in got] == list(range(RECIPE["max_steps"]))
    for g, w in zip(got, want):
        assert abs(g["loss"] - w["loss"]) <= LOSS_ATOL, (g, w)
        assert abs(g["lr"] - w["lr"]) <= LR_RTOL * w["lr"], (g, w)
        assert abs(g["norm"] - w["norm"]) <= NORM_RTOL * w["norm"], (g, w)
        assert g["dt_ms"] >= 0 and g["tok_s"] >= 0


@pytest.mark.every_cpu_path
def test_val_loss_matches_torch(versus_torch):
    got, want = val_records(versus_torch.log), val_records(versus_torch.records)
    assert [r["step"] for r in want] == [0, 5, 10, 15, 19]
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for g, w in zip(got, want):
        assert abs(g["val_loss"] - w["val_loss"]) <= LOSS_ATOL, (g, w)


def key_bias_split(name, tensor):
    """(the tensor without the key part of c_attn.bias, that key part or None). The key bias has a
    true gradient of exactly zero (adding a constant to a query's scores leaves its softmax as it
    is), so in float32 its gradient is pure rounding noise, which Adam divides by its own RMS: it
    drifts by amounts that depend only on rounding (1.3e-5 in 20 steps here), and it stays exactly
    at its initial value in the float64 reference."""
    if not name.endswith("attn.c_attn.bias"):
        return tensor, None
    C = tensor.shape[0] // 3
    return torch.cat([tensor[:C], tensor[2 * C:]]), tensor[C:2 * C]


def assert_weights_close(got, want):
    """got, want: name -> tensor. Same names and shapes; the largest difference and the RMS of the
    differences over all parameters within WEIGHT_ATOL and WEIGHT_RMS, the key biases within
    KEY_BIAS_ATOL."""
    assert sorted(got) == sorted(want)
    worst, worst_key, squares, count = (0.0, None), (0.0, None), 0.0, 0
    for name in want:
        assert tuple(got[name].shape) == tuple(want[name].shape), name
        (g, g_key), (w, w_key) = key_bias_split(name, got[name].double()), key_bias_split(name, want[name].double())
        diff = (g - w).abs()
        worst = max(worst, (diff.max().item(), name))
        squares += diff.pow(2).sum().item()
        count += diff.numel()
        if g_key is not None:
            worst_key = max(worst_key, ((g_key - w_key).abs().max().item(), name))
    rms = math.sqrt(squares / count)
    assert worst[0] <= WEIGHT_ATOL, "largest difference %.3g in %s" % worst
    assert rms <= WEIGHT_RMS, "RMS difference %.3g" % rms
    assert worst_key[0] <= KEY_BIAS_ATOL, "largest difference %.3g in the key bias of %s" % worst_key


@pytest.mark.every_cpu_path
def test_final_weights_match_torch(versus_torch):
    got = read_weights(versus_torch.out_dir / "model")
    assert all(t.dtype == torch.float32 for t in got.values())
    assert_weights_close(got, versus_torch.params)


# ---------------------------------------------------------------------------------------------
# d) The checkpoint is a Hugging Face GPT-2 directory: transformers, the reference and gpt2c eval agree

def test_checkpoint_loads_in_transformers_and_losses_agree(versus_torch, data):
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    model_dir = versus_torch.out_dir / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["vocab_size"] == 50257
    assert (config["n_layer"], config["n_head"], config["n_embd"], config["n_positions"]) == (2, 2, 64, 64)
    with open(model_dir / "model.safetensors", "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    assert header.pop("__metadata__", {}).get("format") == "pt"  # transformers refuses the file otherwise
    assert all(entry["dtype"] == "F32" for entry in header.values())

    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    hf_logger = hf_logging.get_logger("transformers")
    hf_logger.addHandler(handler)
    try:
        hf, info = GPT2LMHeadModel.from_pretrained(str(model_dir), output_loading_info=True)
    finally:
        hf_logger.removeHandler(handler)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    assert "were not" not in logs.getvalue() and "newly initialized" not in logs.getvalue(), logs.getvalue()

    hf.eval()
    mine = ref.load_hf_dir(model_dir)
    loader = ref.DataLoaderLite(2, 32, sorted(glob.glob(data.val)))
    hf_total = 0.0
    with torch.no_grad():
        for _ in range(2):
            x, y = loader.next_batch()
            hf_total += torch.nn.functional.cross_entropy(hf(x).logits.view(-1, 50257), y.reshape(-1)).item()
    hf_loss = hf_total / 2
    ref_loss = ref.evaluate(mine, loader, 2)
    got = eval_loss(model_dir, data.val, batch_size=2, seq_len=32, steps=2)
    assert abs(hf_loss - ref_loss) <= EVAL_ATOL
    assert abs(got - ref_loss) <= EVAL_ATOL, (got, ref_loss)


# ---------------------------------------------------------------------------------------------
# e) fp16 and bf16 checkpoints

@pytest.mark.parametrize("dtype, tag", [(torch.float16, "F16"), (torch.bfloat16, "BF16")])
def test_eval_reads_half_precision(tmp_path, data, dtype, tag):
    model = ref.random_init(TINY, seed=2, noisy=True)
    with torch.no_grad():  # larger weights, so that rounding them to 16 bits visibly moves the loss
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(10)
    ref.save_hf_dir(model, tmp_path / "m", dtype=dtype)
    header = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert b'"dtype":"%s"' % tag.encode() in header
    loader = ref.DataLoaderLite(2, 32, sorted(glob.glob(data.val)))
    exact = ref.evaluate(model, loader, 2)
    want = ref.evaluate(ref.load_hf_dir(tmp_path / "m"), loader, 2)
    assert abs(want - exact) > 5 * EVAL_ATOL  # so the check below sees whether the file was read right
    got = eval_loss(tmp_path / "m", data.val)
    assert abs(got - want) <= EVAL_ATOL, (got, want, exact)


# ---------------------------------------------------------------------------------------------
# b) Gradient accumulation equals the big batch

def test_accumulation_equals_big_batch(tmp_path, data, init_dir):
    steps = dict(max_steps=10, warmup_steps=3, val_every=5, ckpt_every=10)
    # premise: on the aligned shards two B=2 batches are one B=4 batch, through a wrap-around
    small = ref.DataLoaderLite(2, 32, sorted(glob.glob(data.aligned)))
    big = ref.DataLoaderLite(4, 32, sorted(glob.glob(data.aligned)))
    assert 1 in shards_visited(data.aligned, 4, 32, 10) and shards_visited(data.aligned, 4, 32, 10)[-1] == 0
    for _ in range(10):
        a, b = small.next_batch(), small.next_batch()
        x, y = big.next_batch()
        assert torch.equal(torch.cat([a[0], b[0]]), x) and torch.equal(torch.cat([a[1], b[1]]), y)

    run_gpt2c(*train_cmd(init_dir, data.aligned, data.val, tmp_path / "b2", batch_size=2, val_steps=2, **steps))
    run_gpt2c(*train_cmd(init_dir, data.aligned, data.val, tmp_path / "b4", batch_size=4, val_steps=1, **steps))
    log2, log4 = read_log(tmp_path / "b2"), read_log(tmp_path / "b4")
    assert [r["step"] for r in train_records(log2)] == list(range(10))
    assert [r["step"] for r in train_records(log4)] == list(range(10))
    for g, w in zip(train_records(log2), train_records(log4)):
        assert abs(g["loss"] - w["loss"]) <= LOSS_ATOL, (g, w)
        assert g["lr"] == w["lr"]
        assert abs(g["norm"] - w["norm"]) <= NORM_RTOL * w["norm"], (g, w)
    assert [r["step"] for r in val_records(log2)] == [r["step"] for r in val_records(log4)] == [0, 5, 9]
    for g, w in zip(val_records(log2), val_records(log4)):
        assert abs(g["val_loss"] - w["val_loss"]) <= LOSS_ATOL, (g, w)
    assert_weights_close(read_weights(tmp_path / "b2" / "model"), read_weights(tmp_path / "b4" / "model"))


# ---------------------------------------------------------------------------------------------
# b2) --precision bf16 follows the fp32 run

# bf16 inputs carry 8 bits of mantissa; measured over the 20 steps: loss within 2.1e-4, norm
# within 1.8e-4 relative. The tolerances leave 25x and 50x of room.
BF16_LOSS_ATOL = 5e-3  # per-step loss and val loss
BF16_NORM_RTOL = 1e-2  # gradient norm, relative


@pytest.mark.every_cpu_path
def test_bf16_follows_fp32(tmp_path, data, init_dir, versus_torch):
    """The comparison run again with bf16 matmul inputs: every step's loss and norm stay within
    bf16 tolerance of the fp32 run, and they are not identical (the bf16 path really ran)."""
    run_gpt2c(*train_cmd(init_dir, data.train, data.val, tmp_path / "bf16", precision="bf16"))
    got, want = train_records(read_log(tmp_path / "bf16")), train_records(versus_torch.log)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for g, w in zip(got, want):
        assert abs(g["loss"] - w["loss"]) <= BF16_LOSS_ATOL, (g, w)
        assert abs(g["norm"] - w["norm"]) <= BF16_NORM_RTOL * w["norm"], (g, w)
    assert any(g["loss"] != w["loss"] for g, w in zip(got, want))
    for g, w in zip(val_records(read_log(tmp_path / "bf16")), val_records(versus_torch.log)):
        assert abs(g["val_loss"] - w["val_loss"]) <= BF16_LOSS_ATOL, (g, w)


def test_recompute_gives_the_same_run(tmp_path, data, init_dir, versus_torch):
    """--recompute keeps no GELU outputs and recomputes them in the backward: the same numbers,
    bit for bit."""
    run_gpt2c(*train_cmd(init_dir, data.train, data.val, tmp_path / "recompute", recompute=True))
    assert without_timing(read_log(tmp_path / "recompute")) == without_timing(versus_torch.log)
    got = (tmp_path / "recompute" / "model" / "model.safetensors").read_bytes()
    assert got == (versus_torch.out_dir / "model" / "model.safetensors").read_bytes()


# ---------------------------------------------------------------------------------------------
# c) Resume equals the uninterrupted run, bit for bit

@pytest.mark.every_cpu_path
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_equals_uninterrupted_run(tmp_path, data, precision):
    """From a preset (seeded init). Stopped after 4 steps: mid-shard, and step 4 is a validation
    step, the first thing the resumed run does. In bf16 the resumed run must also remake the
    parameters' bf16 copy from the loaded weights."""
    flags = dict(max_steps=10, warmup_steps=3, val_every=4, ckpt_every=3, seed=1234, precision=precision)
    a, b = tmp_path / "a", tmp_path / "b"
    run_gpt2c(*train_cmd("d2", data.train, data.val, a, **flags))
    run_gpt2c(*train_cmd("d2", data.train, data.val, b, stop_after=4, **flags))
    assert [r["step"] for r in train_records(read_log(b))] == [0, 1, 2, 3]
    assert (b / "state").is_dir() and (b / "model" / "model.safetensors").is_file()
    # a flag that must not change (the batch shape decides the loader's position) is refused
    assert_one_line_error(run_gpt2c(*train_cmd("d2", data.train, data.val, b, resume=True,
                                               **dict(flags, seq_len=16, total_batch_size=64)), check=False))
    run_gpt2c(*train_cmd("d2", data.train, data.val, b, resume=True, **flags))

    log_a, log_b = without_timing(read_log(a)), without_timing(read_log(b))
    assert [r["step"] for r in train_records(log_a)] == list(range(10))
    assert [r["step"] for r in val_records(log_a)] == [0, 4, 8, 9]
    assert log_b == log_a
    assert (b / "model" / "model.safetensors").read_bytes() == (a / "model" / "model.safetensors").read_bytes()
    assert json.loads((b / "model" / "config.json").read_text()) == json.loads((a / "model" / "config.json").read_text())


# ---------------------------------------------------------------------------------------------
# f) Bad inputs: one line on stderr starting "gpt2c", exit status 1 or 2, no crash

def read_safetensors_raw(path):
    blob = path.read_bytes()
    (n,) = struct.unpack_from("<Q", blob)
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def write_safetensors_raw(path, header, payload):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + payload)


def broken_model(tmp_path, init_dir, edit_config=None, edit_header=None, edit_file=None, edit_tensors=None):
    d = tmp_path / "model"
    shutil.copytree(init_dir, d)
    if edit_config:
        config = json.loads((d / "config.json").read_text())
        edit_config(config)
        (d / "config.json").write_text(json.dumps(config))
    st = d / "model.safetensors"
    if edit_header:
        header, payload = read_safetensors_raw(st)
        edit_header(header, payload)
        write_safetensors_raw(st, header, payload)
    if edit_tensors:
        from safetensors.numpy import load_file, save_file
        tensors = load_file(str(st))
        edit_tensors(tensors)
        save_file(tensors, str(st), metadata={"format": "pt"})
    if edit_file:
        st.write_bytes(edit_file(st.read_bytes()))
    return d


def broken_shard(tmp_path, data, edit):
    blob = bytearray((data.dir / "train_000000.bin").read_bytes())
    blob = edit(blob)
    (tmp_path / "bad_000000.bin").write_bytes(bytes(blob))
    return str(tmp_path / "bad_*.bin")


def _del(key):
    return lambda config: config.pop(key)


def _offsets_out_of_range(header, payload):
    begin, end = header["ln_f.bias"]["data_offsets"]
    header["ln_f.bias"]["data_offsets"] = [begin + len(payload), end + len(payload)]


def _transpose_c_attn(header, payload):
    header["h.0.attn.c_attn.weight"]["shape"] = header["h.0.attn.c_attn.weight"]["shape"][::-1]


def _int64_tensor(tensors):
    tensors["ln_f.bias"] = np.zeros(TINY.n_embd, dtype=np.int64)


def _header_longer_than_file(blob):
    return struct.pack("<Q", len(blob) + 1000) + blob[8:]


def _wrong_magic(blob):
    blob[0:4] = struct.pack("<i", 20240521)
    return blob


def regular_file(tmp_path):
    (tmp_path / "file").write_text("x")
    return tmp_path / "file"


def _truncated(blob):
    return blob[:-100]


# Each case: which commands it applies to, and how to build the (otherwise good) arguments from
# (tmp_path, data, init_dir) -> dict of train_cmd keyword arguments: model, data, val, out_dir, flags.
BAD_INPUTS = {
    "truncated train shard": ("train eval", lambda t, d, m: dict(data=broken_shard(t, d, _truncated))),
    "truncated val shard": ("train", lambda t, d, m: dict(val=broken_shard(t, d, _truncated))),
    "wrong shard magic": ("train eval", lambda t, d, m: dict(data=broken_shard(t, d, _wrong_magic))),
    "glob matches nothing": ("train eval", lambda t, d, m: dict(data=str(t / "nothing_*.bin"))),
    "config.json without n_layer": ("train eval", lambda t, d, m: dict(
        model=broken_model(t, m, edit_config=_del("n_layer")))),
    "config.json model_type llama": ("train eval", lambda t, d, m: dict(
        model=broken_model(t, m, edit_config=lambda c: c.update(model_type="llama")))),
    "safetensors header longer than the file": ("train eval", lambda t, d, m: dict(
        model=broken_model(t, m, edit_file=_header_longer_than_file))),
    "safetensors data_offsets out of range": ("train eval", lambda t, d, m: dict(
        model=broken_model(t, m, edit_header=_offsets_out_of_range))),
    "tensor with the wrong shape": ("train eval", lambda t, d, m: dict(
        model=broken_model(t, m, edit_header=_transpose_c_attn))),
    "tensor of dtype I64": ("train eval", lambda t, d, m: dict(
        model=broken_model(t, m, edit_tensors=_int64_tensor))),
    "total batch not a multiple of B*T": ("train", lambda t, d, m: dict(flags=dict(total_batch_size=100))),
    "seq-len above n_positions": ("train eval", lambda t, d, m: dict(flags=dict(seq_len=128, total_batch_size=256))),
    "out-dir under a regular file": ("train", lambda t, d, m: dict(out_dir=regular_file(t) / "out")),
    "--resume without state": ("train", lambda t, d, m: dict(flags=dict(resume=True))),
    "--precision fp16": ("train", lambda t, d, m: dict(flags=dict(precision="fp16"))),
    "--device tpu": ("train", lambda t, d, m: dict(flags=dict(device="tpu"))),
}


@pytest.mark.parametrize("case", [(name, cmd) for name, (cmds, _) in BAD_INPUTS.items() for cmd in cmds.split()],
                         ids=lambda case: "%s-%s" % (case[1], case[0].replace(" ", "_")))
def test_bad_input_is_one_line_error(tmp_path, data, init_dir, case):
    name, command = case
    spec = dict(model=init_dir, data=data.train, val=data.val, out_dir=tmp_path / "out", flags={})
    spec.update(BAD_INPUTS[name][1](tmp_path, data, init_dir))
    flags = dict(max_steps=2, warmup_steps=1, total_batch_size=64, val_every=1, val_steps=1, ckpt_every=1)
    flags.update(spec["flags"])
    if command == "train":
        args = train_cmd(spec["model"], spec["data"], spec["val"], spec["out_dir"], **flags)
    else:
        args = eval_cmd(spec["model"], spec["data"], seq_len=flags.get("seq_len", 32), steps=1)
    assert_one_line_error(run_gpt2c(*args, check=False))


def test_a_batch_that_does_not_fit_names_the_largest_that_does(tmp_path, data):
    """d12 at B=512, T=1024 needs about 325 GB: refused before anything is allocated, with the
    largest --batch-size that fits in the memory free now (or, on a machine with too little for
    even one sequence, that none does)."""
    import re
    out = run_gpt2c(*train_cmd("d12", data.train, data.val, tmp_path / "out", batch_size=512, seq_len=1024,
                               total_batch_size=512 * 1024), check=False)
    assert_one_line_error(out)
    err = out.stderr.decode()
    assert "batch 512 x 1024 needs" in err, err
    fits = re.search(r"the largest --batch-size that fits at --seq-len 1024 is (\d+), or --recompute", err)
    assert fits and 1 <= int(fits.group(1)) < 512 or "no --batch-size fits at --seq-len 1024" in err, err


def test_a_terminal_gets_one_progress_line(tmp_path, data, init_dir):
    """On a terminal (a pseudo-terminal here) the steps are one line redrawn in place, with the
    step, a bar, the loss, tokens/s and the ETA; the validation and checkpoint lines stand
    between; in a pipe (every other test) a line per step, as log.jsonl has them."""
    import os
    import pty
    import re
    master, slave = pty.openpty()
    cmd = [str(GPT2C), *map(str, train_cmd(init_dir, data.train, data.val, tmp_path / "run", max_steps=6,
                                           val_every=3, ckpt_every=0))]
    proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    text = out.decode()
    bars = re.findall(r"\r\x1b\[Kstep (\d)/6 \[([#.]{24})\] +(\d+)% \| loss [\d.]+ \| \d+ tok/s \| ETA \d+m\d\ds", text)
    assert [int(b[0]) for b in bars] == [1, 2, 3, 4, 5, 6], text
    assert bars[-1][1:] == ("#" * 24, "100")
    assert "| val loss" in text and "checkpoint after step 5" in text
    assert not any(l.startswith("step     0/6 |") for l in text.splitlines())  # no plain step lines
