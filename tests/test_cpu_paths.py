"""The CPU path a run takes, and --profile.

Under GPT2C_CPU_ISA (ctest's py_cpu_path_* entries run the every_cpu_path tests of this file,
test_train.py and test_sample.py once per level) every library must really run that level, and
the plan line must name the route; the plain run checks the machine's best level. The profile
tests check its accounting, none of it timing: every kind of work shows, the kinds add up to the
run, and profiling changes no number."""
import json

import pytest

import torch_gpt2 as ref
from conftest import CPU_ISA, cpu_info, run_gpt2c

# level: gpt2c's kernels, oneDNN's cap, OpenBLAS's kernels, and the two routes the plan names
EXPECTED = {
    "amx": ("avx512", "avx512_core_amx", "SkylakeX", "fp32 (AVX-512)", "bf16 (AMX)"),
    "avx512_bf16": ("avx512", "avx512_core_bf16", "SkylakeX", "fp32 (AVX-512)", "bf16 (AVX512_BF16)"),
    "avx512": ("avx512", "avx512_core", "SkylakeX", "fp32 (AVX-512)",
               "bf16 (emulated: AVX-512, fp32 GEMM on rounded inputs)"),
    "avx2": ("avx2", "avx2", "Haswell", "fp32 (AVX2)", "bf16 (emulated: AVX2, fp32 GEMM on rounded inputs)"),
    "x86-64": ("x86-64", "sse41", "Prescott", "fp32 (x86-64)",
               "bf16 (emulated: x86-64, fp32 GEMM on rounded inputs)"),
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    ref.save_hf_dir(ref.random_init(ref.Config(n_layer=2, n_head=2, n_embd=64, n_positions=64), 3), d)
    return d


def train(shard, out_dir, *flags, model="d2"):
    return run_gpt2c("train", "--model", model, "--data", shard / "train_*.bin", "--out-dir", out_dir,
                     "--batch-size", 2, "--seq-len", 32, "--max-steps", 2, "--warmup-steps", 1,
                     "--val-every", 0, "--threads", 2, "--max-seq-len", 64, *flags)


@pytest.mark.every_cpu_path
def test_every_library_runs_the_level():
    """The level in use is the cap (or the CPU's best), and gpt2c's kernels, oneDNN and OpenBLAS
    all run it: a cap that some library ignored would test nothing."""
    info = cpu_info()
    assert info["cpu_isa"] == (CPU_ISA or info["cpu_isas"][0])
    assert info["cpu_isas"][-1] == "x86-64"
    if CPU_ISA is None:  # uncapped, oneDNN and OpenBLAS pick by the CPU's model
        assert (info["fp32"], info["bf16"]) == EXPECTED[info["cpu_isa"]][3:]
        return
    got = (info["kernels"], info["onednn"], info["openblas"], info["fp32"], info["bf16"])
    assert got == EXPECTED[CPU_ISA]


@pytest.mark.every_cpu_path
def test_plan_and_sample_name_the_route(shard, model_dir, tmp_path):
    info = cpu_info()
    for precision in ("fp32", "bf16"):
        out = train(shard, tmp_path / precision, "--precision", precision).stdout.decode()
        plan = [line for line in out.splitlines() if line.startswith("plan:")]
        assert len(plan) == 1 and plan[0].endswith("; " + info[precision]), out
    err = run_gpt2c("sample", "--model", model_dir, "--precision", "bf16", "--max-tokens", 3,
                    "--threads", 2, "--prompt", "Hi").stderr.decode()
    assert err.rstrip().endswith("; %s)" % info["bf16"]), err


# ---------------------------------------------------------------------------------------------
# --profile

TRAIN_KINDS = {"matmul_fwd", "matmul_bwd", "attention", "lm_head", "elementwise", "optimizer",
               "data", "comm", "checkpoint", "validation", "samples", "other"}
PRODUCTS = {"matmul_fwd", "matmul_bwd", "lm_head", "attention"}


def check_profile(p, kinds, steps):
    assert p["steps"] == steps
    assert set(p["kinds"]) == kinds
    assert abs(p["step_ms"] * steps - p["total_ms"]) <= 1e-6 * p["total_ms"]
    occasional = sum(p["kinds"].get(k, {"ms": 0})["ms"] for k in ("validation", "samples", "checkpoint", "prompt"))
    assert abs(p["step_alone_ms"] * steps - (p["total_ms"] - occasional)) <= 1e-6 * p["total_ms"]
    for name, k in p["kinds"].items():
        assert k["ms"] >= 0 and k["calls"] >= (0 if name == "other" else 1), (name, k)
        assert abs(k["ms_per_step"] * steps - k["ms"]) <= 1e-6 * max(k["ms"], 1e-9)
        assert abs(k["share"] * p["total_ms"] - k["ms"]) <= 1e-6 * max(k["ms"], 1e-9)
        assert ("gflops" in k) == (name in PRODUCTS), (name, k)
    assert abs(sum(k["share"] for k in p["kinds"].values()) - 1.0) < 1e-6


def test_train_profile(shard, tmp_path):
    """Every kind of training work appears and the kinds add up to the run; the products report
    GFLOP/s; and the run's numbers are those of a run without it. (How the time divides is wall
    time on a shared machine: no bound on it is tested.)"""
    flags = ["--max-steps", 6, "--val-every", 3, "--val-steps", 1, "--val-data", shard / "val_*.bin",
             "--ckpt-every", 3, "--sample-every", 3, "--seed", 7]
    out = train(shard, tmp_path / "profiled", *flags, "--profile", "--json").stdout.decode(errors="replace")
    p = json.loads(out.splitlines()[-1])["profile"]
    check_profile(p, TRAIN_KINDS, 6)
    # the table form names the same kinds
    table = train(shard, tmp_path / "table", *flags, "--profile").stdout.decode(errors="replace")
    assert "profile: 6 steps" in table and all(("  %s " % k) in table for k in TRAIN_KINDS)
    train(shard, tmp_path / "plain", *flags)
    def numbers(d):
        return [{k: v for k, v in json.loads(line).items() if k not in ("dt_ms", "tok_s")}
                for line in (d / "log.jsonl").read_text().splitlines()]
    assert numbers(tmp_path / "profiled") == numbers(tmp_path / "plain")
    assert (tmp_path / "profiled/model/model.safetensors").read_bytes() == \
           (tmp_path / "plain/model/model.safetensors").read_bytes()


def test_eval_and_sample_profiles(shard, model_dir):
    out = run_gpt2c("eval", "--model", model_dir, "--data", shard / "val_*.bin", "--batch-size", 2,
                    "--seq-len", 32, "--steps", 3, "--threads", 2, "--profile", "--json")
    got = json.loads(out.stdout)
    assert isinstance(got["loss"], float)
    check_profile(got["profile"], {"matmul_fwd", "attention", "lm_head", "elementwise", "data", "other"}, 3)
    out = run_gpt2c("sample", "--model", model_dir, "--max-tokens", 12, "--num-samples", 2, "--threads", 2,
                    "--prompt", "Hello there", "--profile", "--json")
    got = json.loads(out.stdout)
    assert len(got["samples"]) == 2
    check_profile(got["profile"], {"matmul_fwd", "attention", "lm_head", "elementwise", "sampling",
                                   "prompt", "other"}, 12)
