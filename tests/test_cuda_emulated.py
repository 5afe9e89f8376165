"""`--device cuda` end to end on the emulated GPU (a build with -DGPT2C_CUDA_EMULATE=ON, as make
test's): the CUDA backend's kernels run on gpt2c's CUDA-on-CPU runtime. Training a d2 model for
three steps (B=2, T=64) follows the CPU's run within the tolerance of the CUDA path's precision,
a resume there equals the uninterrupted run byte for byte, its checkpoint continues on the CPU,
and greedy sampling gives the CPU's tokens. Skipped in a build without the emulated backend."""
import json

import pytest

from conftest import assert_one_line_error, run_gpt2c
from test_train import data, read_log, train_cmd, train_records, val_records, without_timing  # noqa: F401

INFO = json.loads(run_gpt2c("info", "--json").stdout)
pytestmark = pytest.mark.skipif(not INFO.get("cuda_emulated"), reason="the CUDA backend is not emulated in this build")

# d2 at B=2, T=64 for a few steps, one micro-batch a step
FLAGS = dict(batch_size=2, seq_len=64, total_batch_size=128, max_steps=3, warmup_steps=2, val_every=4,
             val_steps=1, ckpt_every=4, seed=1234)
# How far the emulated GPU may be from the CPU (relative; 10x that for the gradient norm): its
# products sum in their own order (the cuBLASLt stand-in), its kernels in theirs; in bf16 the GPU
# also stores its activations in bf16 (the CPU keeps them fp32), and a different sum before a
# rounding to bf16 may round the other way. Measured on an AMD EPYC (2026-12-07): fp32 losses
# equal, norms within 6e-8; bf16 losses within 1e-5, norms 2e-4.
TOLERANCE = {"fp32": 1e-5, "bf16": 5e-4}
NO_TF32 = {"GPT2C_CUDA_TF32": "0"}


def env(**extra):
    import os
    return dict(os.environ, **extra)


def test_info_says_the_device_is_emulated():
    out = run_gpt2c("info").stdout.decode()
    assert "cuda: built, emulated on the CPU" in out
    assert INFO["cuda_devices"] == 1


def follows(cpu_log, gpu_log, precision):
    """The emulated GPU's run against the CPU's: every step's loss, gradient norm and learning
    rate, and the validation losses."""
    cpu, gpu = train_records(cpu_log), train_records(gpu_log)
    assert [r["step"] for r in gpu] == [r["step"] for r in cpu] == list(range(FLAGS["max_steps"]))
    tol = TOLERANCE[precision]
    for a, b in zip(cpu, gpu):
        assert b["loss"] == pytest.approx(a["loss"], rel=tol), (a, b)
        assert b["norm"] == pytest.approx(a["norm"], rel=10 * tol), (a, b)
        assert b["lr"] == a["lr"]
    assert len(val_records(gpu_log)) == len(val_records(cpu_log)) > 0
    for a, b in zip(val_records(cpu_log), val_records(gpu_log)):
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=tol), (a, b)


def test_bf16_training_follows_the_cpu(tmp_path, data):  # noqa: F811
    """bf16, the GPU's default precision; the GPU run with every op checked as it ends
    (GPT2C_CUDA_SYNC_CHECK=1: the checked table must change nothing), and every cuBLASLt
    product it runs resolved when its plan was made, none at a first call. Its attention is our
    own kernels (auto, on the emulated GPU); a third run takes cuDNN's, on its CPU stand-in
    (GPT2C_ATTN=cudnn: the workspace in the scratch, each layer's lse, q, k and v read from qkv
    and their gradients written into dqkv), and follows the CPU too."""
    plans = {}
    for run, device, attn in (("cpu", "cpu", "auto"), ("cuda", "cuda", "auto"), ("cudnn", "cuda", "cudnn")):
        out = run_gpt2c(*train_cmd("d2", data.train, data.val, tmp_path / run, device=device,
                                   precision="bf16", **FLAGS),
                        env=env(GPT2C_CUDA_SYNC_CHECK="1", GPT2C_CUDA_GEMM_LOG="1", GPT2C_ATTN=attn))
        plans[run] = [line for line in out.stdout.decode().splitlines() if line.startswith("plan:")]
        if run == "cuda":
            resolved = [line for line in out.stderr.decode().splitlines() if "cuBLASLt:" in line]
            assert resolved and all(line.endswith("resolved when the plan was made") for line in resolved), resolved
        if run == "cudnn":
            assert "our own attention runs" not in out.stderr.decode()
    assert len(plans["cuda"]) == 1 and "own tiled attention" in plans["cuda"][0], plans
    assert len(plans["cudnn"]) == 1 and "cuDNN fused attention on its CPU stand-in" in plans["cudnn"][0], plans
    for run in ("cuda", "cudnn"):
        follows(read_log(tmp_path / "cpu"), read_log(tmp_path / run), "bf16")


def test_cuda_graph_replays_the_micro_step(tmp_path, data):  # noqa: F811
    """GPT2C_CUDA_GRAPH=1: the micro-step captured once (which fails if any of its ops waits for
    the device) and replayed for the next ones, two a step: the same model, byte for byte. Two
    steps: the capture, its replay in the same step and both micro-steps of the next."""
    flags = dict(FLAGS, total_batch_size=256, max_steps=2, val_every=0, ckpt_every=0)
    for graph in ("0", "1"):
        out = run_gpt2c(*train_cmd("d2", data.train, data.val, tmp_path / graph, device="cuda",
                                   precision="bf16", **flags), env=env(GPT2C_CUDA_GRAPH=graph))
        said = [line for line in out.stderr.decode().splitlines() if "GPT2C_CUDA_GRAPH" in line]
        # captured once (the numbers stay, so the same recording serves every micro-step)
        assert len(said) == int(graph) and all("captured as one graph" in line for line in said), said
    model = "model/model.safetensors"
    assert (tmp_path / "1" / model).read_bytes() == (tmp_path / "0" / model).read_bytes()
    assert without_timing(read_log(tmp_path / "1")) == without_timing(read_log(tmp_path / "0"))


def test_fp32_training_follows_the_cpu_resumes_and_continues_on_the_cpu(tmp_path, data):  # noqa: F811
    """fp32 without TF32: the run follows the CPU's; stopped after a step and resumed on the
    emulated GPU, the same log and bytes as the uninterrupted run; the same checkpoint resumed
    on the CPU goes on to the end within fp32's tolerance of the GPU's run."""
    import shutil
    flags = dict(FLAGS, precision="fp32")
    a, b, c, cpu = tmp_path / "a", tmp_path / "b", tmp_path / "c", tmp_path / "cpu"
    run_gpt2c(*train_cmd("d2", data.train, data.val, a, device="cuda", **flags), env=env(**NO_TF32))
    run_gpt2c(*train_cmd("d2", data.train, data.val, cpu, device="cpu", **flags))
    follows(read_log(cpu), read_log(a), "fp32")

    run_gpt2c(*train_cmd("d2", data.train, data.val, b, device="cuda", stop_after=1, **flags), env=env(**NO_TF32))
    assert [r["step"] for r in train_records(read_log(b))] == [0]
    shutil.copytree(b, c)
    run_gpt2c(*train_cmd("d2", data.train, data.val, b, device="cuda", resume=True, **flags), env=env(**NO_TF32))
    assert without_timing(read_log(b)) == without_timing(read_log(a))
    assert (b / "model" / "model.safetensors").read_bytes() == (a / "model" / "model.safetensors").read_bytes()

    run_gpt2c(*train_cmd("d2", data.train, data.val, c, device="cpu", resume=True, **flags))
    full, resumed = train_records(read_log(a)), train_records(read_log(c))
    assert [r["step"] for r in resumed] == list(range(FLAGS["max_steps"]))
    for x, y in zip(full[1:], resumed[1:]):
        assert y["loss"] == pytest.approx(x["loss"], rel=TOLERANCE["fp32"]), (x, y)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):  # noqa: F811
    """A d2 model trained 12 steps on the CPU, so that its next-token choices are not near ties."""
    out = tmp_path_factory.mktemp("trained") / "run"
    run_gpt2c(*train_cmd("d2", data.train, data.val, out, **dict(FLAGS, max_steps=12, lr=3e-3, val_every=None)))
    return out / "model"


def test_greedy_sampling_gives_the_cpus_tokens(trained):
    """24 greedy tokens, two samples, fp32 without TF32."""
    model = trained
    samples = {}
    for device in ("cpu", "cuda"):
        out = run_gpt2c("sample", "--model", model, "--prompt", "First Citizen:",
                        "--num-samples", 2, "--max-tokens", 24, "--temperature", 0, "--precision", "fp32",
                        "--device", device, "--json", env=env(**NO_TF32))
        samples[device] = [s["ids"] for s in json.loads(out.stdout)["samples"]]
    assert samples["cuda"] == samples["cpu"]


def test_eval_and_serve_run_on_the_emulated_gpu(trained, data):  # noqa: F811
    """eval's loss is the CPU's within fp32's tolerance; serve answers two requests at once
    with `sample --device cuda`'s greedy tokens (each request alone: the CUDA backend shares no
    product between prompts, ops.h's rows promise)."""
    from test_serve import Server
    model = trained
    losses = {}
    for device in ("cpu", "cuda"):
        out = run_gpt2c("eval", "--model", model, "--data", data.val, "--batch-size", 2, "--seq-len", 64,
                        "--steps", 1, "--precision", "fp32", "--device", device, "--json", env=env(**NO_TF32))
        losses[device] = json.loads(out.stdout.decode().splitlines()[-1])["loss"]
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=TOLERANCE["fp32"])

    want = run_gpt2c("sample", "--model", model, "--prompt", "ROMEO:", "--num-samples", 1,
                     "--max-tokens", 12, "--temperature", 0, "--device", "cuda", "--json")
    want = json.loads(want.stdout)["samples"][0]["text"]
    server = Server(model, "--device", "cuda", "--parallel", 2)
    try:
        status, _, body = server.request("/v1/completions", {"prompt": "ROMEO:", "max_tokens": 12,
                                                              "temperature": 0, "n": 2})
        assert status == 200, body
        assert [c["text"] for c in body["choices"]] == [want, want]
    finally:
        rc, err = server.stop()
    assert rc == 0, err


def test_hellaswag_on_the_emulated_gpu_chooses_as_the_cpu(trained):
    """The LM head at the endings' positions only (gpt2_forward_rows: their rows of the final
    LayerNorm moved to the front on the device, their targets uploaded): each example's choices,
    fp32 without TF32, are the CPU's."""
    from test_hellaswag import HELLASWAG
    choices = {}
    for device in ("cpu", "cuda"):
        out = run_gpt2c("eval", "--model", trained, "--hellaswag", HELLASWAG, "--limit", 12,
                        "--precision", "fp32", "--device", device, "--json", env=env(**NO_TF32))
        got = json.loads(out.stdout)["hellaswag"]
        choices[device] = (got["pred"], got["pred_norm"])
    assert choices["cuda"] == choices["cpu"]


@pytest.fixture(scope="module")
def head_16(tmp_path_factory):
    """A Hugging Face directory whose heads are 16 wide (32 / 2): a size the CUDA attention has
    no kernel for (cuda_check_shapes: multiples of 32 up to 128)."""
    import torch_gpt2 as ref
    d = tmp_path_factory.mktemp("head-16")
    ref.save_hf_dir(ref.random_init(ref.Config(n_layer=1, n_head=2, n_embd=32, n_positions=64), 1), d)
    return d


@pytest.mark.parametrize("command", ["sample", "eval", "train", "serve"])
def test_a_head_size_the_cuda_attention_cannot_take_is_one_line(head_16, data, tmp_path, command):  # noqa: F811
    """Every command that opens a model refuses it on `--device cuda` as it is made, with one
    line naming the head size and a non-zero exit, never an abort in a kernel's dispatch."""
    args = {
        "sample": ["sample", "--model", head_16, "--prompt", "Hi", "--max-tokens", 2],
        "eval": ["eval", "--model", head_16, "--data", data.val, "--batch-size", 1, "--seq-len", 16,
                 "--steps", 1],
        "train": train_cmd(head_16, data.train, data.val, tmp_path / "run", batch_size=1, seq_len=16,
                           total_batch_size=16, max_steps=1),
        "serve": ["serve", "--model", head_16, "--port", 0],
    }[command]
    out = run_gpt2c(*args, "--device", "cuda", check=False)
    assert_one_line_error(out)
    err = out.stderr.decode()
    assert "head size" in err and "is 16" in err, err
