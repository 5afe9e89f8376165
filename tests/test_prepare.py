"""`gpt2c prepare`: shards read back and checked against the same recipe written with tiktoken
(llm.c's tinyshakespeare.py and fineweb.py: <|endoftext|> before each document), the same
output for any thread count, and clean failures that leave no shard behind."""
import json
import random
import struct

import pytest
from conftest import ROOT, run_gpt2c

SHAKESPEARE = ROOT / "data/tinyshakespeare/input.txt"
EOT = 50256


def read_shard(path):
    data = path.read_bytes()
    header = struct.unpack("<256i", data[:1024])
    assert header[0] == 20240520 and header[1] == 1 and not any(header[3:])
    assert len(data) == 1024 + 2 * header[2]
    return list(struct.unpack("<%dH" % header[2], data[1024:]))


def shards(out_dir):
    return sorted(p.name for p in out_dir.iterdir())


def train_tokens(out_dir):
    tokens = []
    for name in shards(out_dir):
        if name.startswith("train_"):
            tokens += read_shard(out_dir / name)
    return tokens


def llmc_tinyshakespeare(enc, text):
    """llm.c's dev/data/tinyshakespeare.py, written again here."""
    sections = text.split("\n\n")
    tokens = []
    for i, s in enumerate(sections):
        tokens.append(EOT)
        tokens.extend(enc.encode_ordinary(s + "\n\n" if i != len(sections) - 1 else s))
    return tokens


def test_tinyshakespeare_equals_llmc_recipe(tmp_path, tiktoken_gpt2):
    out = run_gpt2c("prepare", "--input", SHAKESPEARE, "--split-blank-lines", "--out-dir", tmp_path, "--quiet")
    want = llmc_tinyshakespeare(tiktoken_gpt2, SHAKESPEARE.read_text())
    assert shards(tmp_path) == ["train_000000.bin", "val_000000.bin"]
    assert read_shard(tmp_path / "val_000000.bin") == want[:32768]
    assert read_shard(tmp_path / "train_000000.bin") == want[32768:]
    assert b"7222 documents -> 338028 tokens" in out.stdout


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_large_inputs_same_for_any_thread_count(tmp_path, tiktoken_gpt2, threads):
    """Inputs of several MiB are cut into chunks; the result must not depend on the cuts."""
    rng = random.Random(3)
    lines = SHAKESPEARE.read_text().splitlines(keepends=True)
    big = "".join(rng.sample(lines, len(lines)) + ["Ünïcödé 😀\u3000x\n"] * 1000 + lines)
    small = "a short second document"
    (tmp_path / "big.txt").write_text(big)
    (tmp_path / "small.txt").write_text(small)
    out_dir = tmp_path / "out"
    run_gpt2c("prepare", "--input", tmp_path / "big.txt", tmp_path / "small.txt", "--out-dir", out_dir,
              "--val-tokens", "1000", "--shard-tokens", "300000", "--threads", threads, "--quiet")
    want = [EOT] + tiktoken_gpt2.encode_ordinary(big) + [EOT] + tiktoken_gpt2.encode_ordinary(small)
    assert read_shard(out_dir / "val_000000.bin") == want[:1000]
    got = train_tokens(out_dir)
    assert got == want[1000:]
    names = [n for n in shards(out_dir) if n.startswith("train_")]
    assert len(names) == -(-(len(want) - 1000) // 300000)
    assert all(len(read_shard(out_dir / n)) == 300000 for n in names[:-1])


def test_blank_lines_in_big_file_same_for_any_thread_count(tmp_path):
    text = SHAKESPEARE.read_text() * 3 + "\n\n\n\n\nend\n\n"
    (tmp_path / "in.txt").write_text(text)
    results = []
    for threads in (1, 2):
        out_dir = tmp_path / ("out%d" % threads)
        run_gpt2c("prepare", "--input", tmp_path / "in.txt", "--split-blank-lines", "--out-dir", out_dir,
                  "--threads", threads, "--quiet")
        results.append((read_shard(out_dir / "val_000000.bin"), train_tokens(out_dir)))
    assert results[0] == results[1]
    val, train = results[0]
    assert (val + train).count(EOT) == len(text.split("\n\n"))


def test_jsonl(tmp_path, tiktoken_gpt2):
    docs = ["first document", "second\nwith newline and \u00e9", "", "nul \u0000 inside", "😀 emoji"]
    lines = [json.dumps({"text": d, "id": i}) for i, d in enumerate(docs)]
    lines.insert(2, "   ")  # blank lines carry no document
    (tmp_path / "in.jsonl").write_text("\ufeff" + "\r\n".join(lines) + "\n")  # BOM, CRLF
    run_gpt2c("prepare", "--input", tmp_path / "in.jsonl", "--format", "jsonl", "--out-dir", tmp_path / "out",
              "--val-tokens", "3", "--quiet")
    want = []
    for d in docs:
        want += [EOT] + tiktoken_gpt2.encode_ordinary(d)
    out_dir = tmp_path / "out"
    assert read_shard(out_dir / "val_000000.bin") + train_tokens(out_dir) == want


@pytest.mark.parametrize("line, message", [
    ('{"text": "ok"}\n{"text": "ok"}\n[1, 2]\n', "in.jsonl:3: not a JSON object"),
    ('{"text": "ok"}\n{"txt": "x"}\n', 'in.jsonl:2: the object has no "text" field'),
    ('{"text": 5}\n', 'in.jsonl:1: "text" is not a string'),
    ('{"text": "ok"}\n\n{"text": "unterminated}\n', "in.jsonl:3: invalid JSON"),
    ('{"text": "ok"} trailing\n', "in.jsonl:1: invalid JSON"),
])
def test_jsonl_errors_name_file_and_line(tmp_path, line, message):
    good = "".join(json.dumps({"text": "filler %d" % i}) + "\n" for i in range(50))
    (tmp_path / "good.jsonl").write_text(good)
    (tmp_path / "in.jsonl").write_text(line)
    out_dir = tmp_path / "out"
    args = ["--format", "jsonl", "--out-dir", out_dir, "--val-tokens", "10", "--shard-tokens", "20", "--quiet"]
    out = run_gpt2c("prepare", "--input", tmp_path / "good.jsonl", tmp_path / "in.jsonl", *args, check=False)
    assert out.returncode == 1
    err = out.stderr.decode().strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert shards(out_dir) == []  # no partial or completed shard of the failed run
    # a failed run into the directory of an earlier run leaves that run as it was
    run_gpt2c("prepare", "--input", tmp_path / "good.jsonl", "--out-dir", out_dir, "--format", "jsonl", "--quiet",
              "--val-tokens", "10", "--shard-tokens", "37")
    before = {name: (out_dir / name).read_bytes() for name in shards(out_dir)}
    assert len(before) > 5
    out = run_gpt2c("prepare", "--input", tmp_path / "good.jsonl", tmp_path / "in.jsonl", *args, check=False)
    assert out.returncode == 1
    assert {name: (out_dir / name).read_bytes() for name in shards(out_dir)} == before


def test_bad_inputs_leave_nothing(tmp_path):
    out_dir = tmp_path / "out"
    out = run_gpt2c("prepare", "--input", SHAKESPEARE, tmp_path / "missing.txt", "--out-dir", out_dir, check=False)
    assert out.returncode == 1 and b"cannot open" in out.stderr and b"missing.txt" in out.stderr
    assert not out_dir.exists() or shards(out_dir) == []
    (tmp_path / "file").write_text("x")
    out = run_gpt2c("prepare", "--input", SHAKESPEARE, "--out-dir", tmp_path / "file" / "sub", check=False)
    assert out.returncode == 1 and b"cannot create directory" in out.stderr
    out = run_gpt2c("prepare", "--input", tmp_path, "--out-dir", out_dir, check=False)
    assert out.returncode == 1 and b"not a regular file" in out.stderr
    # more validation tokens than the input has
    out = run_gpt2c("prepare", "--input", SHAKESPEARE, "--out-dir", out_dir, "--val-tokens", "400000", check=False)
    assert out.returncode == 1 and b"not enough" in out.stderr
    assert shards(out_dir) == []


@pytest.mark.parametrize("args, message", [
    ([], "no --input"),
    (["--input", "x"], "no --out-dir"),
    (["--input", "x", "--out-dir", "d", "--threads", "0"], "--threads"),
    (["--input", "x", "--out-dir", "d", "--shard-tokens", "0"], "--shard-tokens"),
    (["--input", "x", "--out-dir", "d", "--val-tokens", "-5"], "--val-tokens"),
    (["--input", "x", "--out-dir", "d", "--format", "csv"], "--format"),
])
def test_usage_errors(args, message):
    out = run_gpt2c("prepare", *args, check=False)
    assert out.returncode == 2 and message in out.stderr.decode()


def test_empty_file_is_one_empty_document_and_stale_shards_go(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "one.txt").write_text("one")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name in ("train_000005.bin", "val_000000.bin", "train_000009.bin.tmp"):
        (out_dir / name).write_bytes(b"old")
    (out_dir / "notes.txt").write_text("keep me")
    out = run_gpt2c("prepare", "--input", tmp_path / "empty.txt", tmp_path / "one.txt", "--out-dir", out_dir,
                    "--val-tokens", "0", "--quiet")
    assert b"removed 2 stale shards" in out.stdout
    assert shards(out_dir) == ["notes.txt", "train_000000.bin"]
    assert read_shard(out_dir / "train_000000.bin") == [EOT, EOT, 505]
