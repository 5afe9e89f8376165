"""`gpt2c train --tensorboard DIR`: TensorBoard's own readers (its event-file loader, which checks
every record's CRC32C, and its accumulator) read back every value and step of the run's
log.jsonl, the samples' text as printed, and a resumed run as one run."""
import json
import shutil
import struct

import pytest

from conftest import run_gpt2c

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator, event_file_loader  # noqa: E402


def train(shard, out, tb, *flags):
    args = ["train", "--model", "d2", "--max-seq-len", 64, "--data", shard / "train_*.bin",
            "--val-data", shard / "val_*.bin", "--out-dir", out, "--batch-size", 2, "--seq-len", 32,
            "--max-steps", 6, "--warmup-steps", 1, "--val-every", 2, "--val-steps", 1,
            "--threads", 2, "--tensorboard", tb, *flags]
    return run_gpt2c(*args).stdout.decode()


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def log_records(out):
    return [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]


def events(tb):
    files = sorted(tb.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    return list(event_file_loader.EventFileLoader(str(files[0])).Load())


SCALARS = {"loss": "loss", "lr": "lr", "grad_norm": "norm", "tokens_per_s": "tok_s", "step_ms": "dt_ms",
           "val_loss": "val_loss", "hellaswag_acc_norm": "hellaswag_acc_norm", "hellaswag_acc": "hellaswag_acc"}


def test_every_value_and_step_reads_back(shard, tmp_path):
    hs = tmp_path / "hs.txt"
    hs.write_text("".join(f"context {i}\n{i % 4}\nan end\nsome end\nthird\nfourth one\n" for i in range(12)))
    out, tb = tmp_path / "run", tmp_path / "tb"
    printed = train(shard, out, tb, "--sample-every", 3, "--hellaswag", hs, "--hellaswag-every", 3)
    evs = events(tb)
    assert evs[0].file_version == "brain.Event:2"
    got = {}
    texts = {}
    for e in evs[1:]:
        for v in e.summary.value:
            # (the loader gives what TensorBoard shows: simple_value as the scalars plugin's tensor)
            if v.metadata.plugin_data.plugin_name == "text":
                texts[(e.step, v.tag)] = v.tensor.string_val[0].decode()
            else:
                assert v.metadata.plugin_data.plugin_name == "scalars" and (v.tag, e.step) not in got
                got[(v.tag, e.step)] = v.tensor.float_val[0]
    want = {}
    for r in log_records(out):
        for tag, key in SCALARS.items():
            if key in r:
                want[(tag, r["step"])] = f32(r[key])
    assert set(got) == set(want)
    for k, v in want.items():  # (log.jsonl prints tok_s to 0.1 and dt_ms to 0.001, the rest in full)
        printed_to = {"tokens_per_s": 0.05, "step_ms": 0.0005}.get(k[0], 0)
        assert got[k] == pytest.approx(v, rel=1e-6, abs=printed_to), k
    assert {t for t, _ in want} == set(SCALARS)  # every kind was there
    # the samples: as printed ("step S | sample K: TEXT"), at steps 3 and the last
    lines = [l for l in printed.splitlines() if " | sample " in l]
    assert len(lines) == 8 and len(texts) == 8
    for l in lines:
        head, text = l.split(": ", 1)
        step, k = int(head.split()[1]), int(head.split()[-1])
        assert texts[(step, f"samples/{k}")] == text


def test_a_resumed_run_reads_as_one(shard, tmp_path):
    """Stopped at 2, run on to 4, then resumed from the checkpoint at 2 again (as after a crash
    that lost the later one): the accumulator drops the first attempt's steps 2-3 (the
    SessionLog START each resumed file begins with), and what is left is log.jsonl's."""
    out, tb, saved = tmp_path / "run", tmp_path / "tb", tmp_path / "saved"
    train(shard, out, tb, "--stop-after", 2)
    shutil.copytree(out, saved)
    train(shard, out, tb, "--resume", "--stop-after", 4)
    for name in ("state", "model"):
        shutil.rmtree(out / name)
        shutil.copytree(saved / name, out / name)
    train(shard, out, tb, "--resume")
    acc = event_accumulator.EventAccumulator(str(tb))
    acc.Reload()
    loss = [(s.step, s.value) for s in acc.Scalars("loss")]
    want = [(r["step"], f32(r["loss"])) for r in log_records(out) if "loss" in r]
    assert [s for s, _ in want] == list(range(6))
    assert [s for s, _ in loss] == [s for s, _ in want]
    assert [v for _, v in loss] == pytest.approx([v for _, v in want], rel=1e-6)


def test_an_unwritable_directory_is_a_one_line_error(shard, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    got = run_gpt2c("train", "--model", "d2", "--max-seq-len", 64, "--data", shard / "train_*.bin",
                    "--out-dir", tmp_path / "o", "--batch-size", 2, "--seq-len", 32, "--max-steps", 1,
                    "--tensorboard", blocker / "tb", check=False)
    err = got.stderr.decode()
    assert got.returncode != 0 and err.count("\n") == 1 and "tb" in err, err
