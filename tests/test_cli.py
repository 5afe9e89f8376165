"""The gpt2c command line: help, tokenize/detokenize against tiktoken, inspect, and clear
one-line errors with a non-zero exit for bad input."""
import os
import pty
import random
import struct
import subprocess

import pytest
from conftest import GPT2C, ROOT, run_gpt2c

SAMPLE = "Hello, I'm a language model! Ünïcödé 😀 and <|endoftext|> as text.\n\n  spaces\t"


def one_line_error(out, code=1):
    assert out.returncode == code, (out.returncode, out.stderr)
    lines = out.stderr.decode().strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_help_lists_commands():
    out = run_gpt2c("--help")
    for cmd in ("tokenize", "detokenize", "prepare", "inspect"):
        assert cmd.encode() in out.stdout
        assert run_gpt2c(cmd, "--help").stdout.startswith(b"usage: gpt2c " + cmd.encode())


def test_usage_errors_exit_2():
    assert run_gpt2c(check=False).returncode == 2
    assert "unknown command" in one_line_error(run_gpt2c("frobnicate", check=False), 2)
    assert "--format" in one_line_error(run_gpt2c("tokenize", "--format", "u32", check=False), 2)
    assert "unknown option or missing value: --nope" in one_line_error(run_gpt2c("detokenize", "--nope", check=False), 2)
    assert "missing value: --output" in one_line_error(run_gpt2c("tokenize", "--output", check=False), 2)


def test_tokenize_text_and_u16_match_tiktoken(tmp_path, tiktoken_gpt2):
    want = tiktoken_gpt2.encode_ordinary(SAMPLE)
    src = tmp_path / "in.txt"
    src.write_text(SAMPLE)
    text = run_gpt2c("tokenize", src, "--format", "text").stdout.decode()
    assert text.endswith("\n") and list(map(int, text.split())) == want
    run_gpt2c("tokenize", src, "-o", tmp_path / "ids.u16")
    assert (tmp_path / "ids.u16").read_bytes() == struct.pack("<%dH" % len(want), *want)
    # standard input, and "-"
    assert run_gpt2c("tokenize", "--format", "text", input=SAMPLE.encode()).stdout.decode() == text
    assert run_gpt2c("tokenize", "-", "--format", "text", input=SAMPLE.encode()).stdout.decode() == text


def test_empty_input():
    assert run_gpt2c("tokenize", "--format", "text", input=b"").stdout == b"\n"
    assert run_gpt2c("detokenize", "--format", "text", input=b"\n").stdout == b""


def test_detokenize_inverts_tokenize(tmp_path):
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(20000)) + SAMPLE.encode()
    (tmp_path / "in.bin").write_bytes(data)
    run_gpt2c("tokenize", tmp_path / "in.bin", "-o", tmp_path / "ids")
    run_gpt2c("detokenize", tmp_path / "ids", "-o", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    ids = run_gpt2c("tokenize", "--format", "text", input=data).stdout
    assert run_gpt2c("detokenize", "--format", "text", input=ids).stdout == data


def test_detokenize_endoftext():
    assert run_gpt2c("detokenize", "--format", "text", input=b"50256 15496").stdout == b"<|endoftext|>Hello"


@pytest.mark.parametrize("ids, fmt, message", [
    (b"15496 50257", "text", "outside the vocabulary"),
    (b"15496 99999999999999999999999", "text", "outside the vocabulary"),
    (b"15496 12x", "text", "not a decimal number"),
    (b"-1", "text", "not a decimal number"),
    (b"\x00\x00\x01", "u16", "odd number of bytes"),
    (struct.pack("<2H", 11, 60000), "u16", "out of range"),
])
def test_detokenize_bad_ids(ids, fmt, message):
    assert message in one_line_error(run_gpt2c("detokenize", "--format", fmt, input=ids, check=False))


def test_missing_and_unwritable_files(tmp_path):
    assert "cannot open" in one_line_error(run_gpt2c("tokenize", tmp_path / "nope.txt", "--format", "text", check=False))
    assert "cannot write" in one_line_error(run_gpt2c("tokenize", "-o", tmp_path / "no/such/dir", input=b"x", check=False))
    assert "cannot open" in one_line_error(run_gpt2c("detokenize", tmp_path / "nope", check=False))


def test_binary_ids_are_not_written_to_a_terminal():
    master, slave = pty.openpty()
    try:
        out = subprocess.run([str(GPT2C), "tokenize"], input=b"hi", stdout=slave, stderr=subprocess.PIPE, check=False)
    finally:
        os.close(slave)
        os.close(master)
    assert out.returncode == 2 and b"terminal" in out.stderr


def test_inspect(tmp_path):
    run_gpt2c("prepare", "--input", ROOT / "data/tinyshakespeare/input.txt", "--split-blank-lines",
              "--out-dir", tmp_path, "--quiet")
    out = run_gpt2c("inspect", tmp_path / "val_000000.bin", tmp_path / "train_000000.bin", "--head", "5").stdout.decode()
    assert "val_000000.bin: 32768 tokens, 809 documents" in out
    assert "train_000000.bin: 305260 tokens, 6413 documents" in out
    assert "<|endoftext|>First Citizen:" in out
    assert "total: 338028 tokens, 7222 documents in 2 shards" in out
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 2000)
    assert "bad magic" in one_line_error(run_gpt2c("inspect", tmp_path / "junk.bin", check=False))
