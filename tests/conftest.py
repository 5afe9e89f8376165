"""Shared fixtures for the Python tests: the reference tokenizer (tiktoken, built offline from the
bundled vocabulary), ways to run gpt2c's build (the sanitizer build under `make test`), and the
CPU paths: with GPT2C_CPU_ISA set (ctest's py_cpu_path_* entries), the tests marked
every_cpu_path run with the CPU kernels capped at that level, every gpt2c started inheriting it."""
import json
import os
import struct
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("GPT2C_BUILD_DIR", ROOT / "build"))
GPT2C = BUILD / "gpt2c"
TOK_BATCH = BUILD / "tests" / "tok_batch"


def reference_encoding():
    """tiktoken's "gpt2" encoding, made from data/gpt2 with no network and no cache."""
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(ROOT / "data/gpt2/vocab.bpe"),
        encoder_json_file=str(ROOT / "data/gpt2/encoder.json"),
        vocab_bpe_hash="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        encoder_json_hash="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
        explicit_n_vocab=50257,
    )


@pytest.fixture(scope="session")
def tiktoken_gpt2():
    return reference_encoding()


def _batch(strings, *flags):
    """Run tests/tok_batch over byte strings; returns one list of ints per string."""
    payload = b"".join(struct.pack("<I", len(s)) + s for s in strings)
    out = subprocess.run([str(TOK_BATCH), *flags], input=payload, capture_output=True, check=False)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    data, pos, results = out.stdout, 0, []
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        results.append(list(struct.unpack_from("<%dI" % n, data, pos + 4)))
        pos += 4 + 4 * n
    assert len(results) == len(strings)
    return results


@pytest.fixture(scope="session")
def gpt2c_encode_batch():
    """Encode each byte string with gpt2c (and check that each decodes back to itself)."""
    return lambda strings: _batch(strings, "--roundtrip")


@pytest.fixture(scope="session")
def gpt2c_pieces_batch():
    """The pre-tokenizer's piece lengths for each byte string."""
    return lambda strings: _batch(strings, "--pieces")


# What a sanitizer report or a Python traceback starts with: never acceptable on stderr.
SANITIZER_MARKS = ("Sanitizer", "runtime error", "Traceback")


def assert_ok(out):
    """A finished gpt2c (or mpirun of it) succeeded: exit status 0 and no sanitizer report."""
    err = out.stderr.decode(errors="replace")
    assert out.returncode == 0, err + out.stdout.decode(errors="replace")[-2000:]
    assert not any(mark in err for mark in SANITIZER_MARKS), err
    return out


def run_gpt2c(*args, input=None, check=True, env=None, timeout=900):
    """Run the gpt2c build (arguments as str()), its output captured. check: it must succeed
    (assert_ok). The timeout only catches a hang: it is generous for a sanitizer build on a busy
    machine, and no test measures time with it."""
    out = subprocess.run([str(GPT2C), *map(str, args)], input=input, capture_output=True, check=False,
                         env=env, timeout=timeout)
    return assert_ok(out) if check else out


def wait_for(cond, timeout=60, what="condition"):
    """Poll cond() until it gives a true value, which is returned: a test waits for what the
    program does, never for a fixed time. The deadline only catches a hang: it is generous for a
    sanitizer build on a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out (%g s) waiting for %s" % (timeout, what))
        time.sleep(0.05)


def assert_one_line_error(out):
    """A bad input's contract: exit status 1 or 2 and exactly one line on stderr, from gpt2c."""
    err = out.stderr.decode(errors="replace")
    assert out.returncode in (1, 2), (out.returncode, err)
    assert not any(mark in err for mark in SANITIZER_MARKS), err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpt2c"), err


# ---------------------------------------------------------------------------------------------
# The CPU paths

CPU_ISA = os.environ.get("GPT2C_CPU_ISA") or None
SKIPPED = 77  # ctest's SKIP_RETURN_CODE for these entries


def pytest_configure(config):
    config.addinivalue_line("markers", "every_cpu_path: also run once per CPU instruction set "
                            "(ctest's py_cpu_path_* entries, GPT2C_CPU_ISA)")


def cpu_info():
    """`gpt2c info --json` as a dict (under GPT2C_CPU_ISA when it is set)."""
    return json.loads(run_gpt2c("info", "--json").stdout)


def pytest_sessionstart(session):
    """Under GPT2C_CPU_ISA: a level this CPU lacks, or its best (which the plain run covers), ends
    the session as skipped (exit status 77), saying why."""
    if not CPU_ISA:
        return
    out = run_gpt2c("info", "--json", check=False)
    err = out.stderr.decode(errors="replace").strip()
    if out.returncode != 0:
        if "this CPU can run at most" in err:
            pytest.exit("skipped: " + err, returncode=SKIPPED)
        pytest.exit("gpt2c info failed: " + err, returncode=1)
    info = json.loads(out.stdout)
    if info["cpu_isas"][0] == CPU_ISA:
        pytest.exit("skipped: %s is this CPU's best level, which the plain test run covers" % CPU_ISA,
                    returncode=SKIPPED)


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """A directory of two small shards: train_000000.bin (3,000 tokens) and val_000000.bin (600)."""
    import numpy as np
    import torch_gpt2 as ref
    d = tmp_path_factory.mktemp("shard")
    ref.write_shard(d / "train_000000.bin", np.arange(1000, 1000 + 3000, dtype=np.uint16) % 50257)
    ref.write_shard(d / "val_000000.bin", np.arange(7000, 7000 + 600, dtype=np.uint16))
    return d
