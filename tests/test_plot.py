"""`gpt2c plot RUN_DIR... -o FILE`: the pictures gnuplot draws from runs' logs (SVG parsed as XML,
PNG by its header), several runs overlaid, the baseline, and one-line errors."""
import json
import os
import struct
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import assert_one_line_error, run_gpt2c

pytestmark = pytest.mark.skipif(subprocess.run(["which", "gnuplot"], capture_output=True).returncode != 0,
                                reason="gnuplot not installed (scripts/install-deps.sh)")


def write_run(d, steps=40, val=True, hellaswag=True, cut=False):
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in range(steps):
        if val and s % 10 == 0:
            lines.append({"step": s, "val_loss": 11 - s / 10})
        if hellaswag and s % 20 == 0:
            lines.append({"step": s, "hellaswag_acc_norm": 0.25 + s / 1000, "hellaswag_acc": 0.25,
                          "hellaswag_n": 100})
        lines.append({"step": s, "loss": 11 - s / 8, "lr": 1e-3 * min(1, (s + 1) / 10), "norm": 2 / (s + 1),
                      "dt_ms": 100.0, "tok_s": 2000 + s})
    text = "".join(json.dumps(l) + "\n" for l in lines)
    if cut:
        text += '{"step": 40, "loss": 7.'  # a record cut short by a crash
    (d / "log.jsonl").write_text(text)
    return d


def svg_text(path):
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return " ".join(t.strip() for t in root.itertext() if t.strip())


def test_svg_has_every_panel_the_runs_and_the_baseline(tmp_path):
    a = write_run(tmp_path / "run_a")
    b = write_run(tmp_path / "run-b", steps=25, hellaswag=False, cut=True)
    out = tmp_path / "curves.svg"
    run_gpt2c("plot", a, b, "-o", out, "--baseline", "gpt2-124m")
    text = svg_text(out)
    for words in ("train loss", "validation loss", "HellaSwag", "learning rate", "gradient norm",
                  "throughput", "step", "loss (nats per token)", "tokens per second",
                  "run_a", "run-b", "GPT-2 124M, FineWeb-Edu val: 3.292", "GPT-2 124M: 0.2955",
                  "GPT-3 Small 125M: 0.337"):
        assert words in text, words
    assert not list(tmp_path.glob("*.tmp*"))


def test_png_and_panels_without_data(tmp_path):
    a = write_run(tmp_path / "r", val=False, hellaswag=False)
    out = tmp_path / "c.png"
    run_gpt2c("plot", a, "--output", out)
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1500, 900)
    svg = tmp_path / "c.svg"
    run_gpt2c("plot", a, "-o", svg)
    text = svg_text(svg)
    assert "no validation in these runs" in text and "no HellaSwag in these runs" in text


def test_bad_inputs_are_one_line_errors(tmp_path):
    good = write_run(tmp_path / "good")
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "log.jsonl").write_text("not json\n")
    cases = [
        ((empty, "-o", tmp_path / "x.svg"), "has no log.jsonl"),
        ((tmp_path / "missing", "-o", tmp_path / "x.svg"), "is not a directory"),
        ((tmp_path / "junk", "-o", tmp_path / "x.svg"), "line 1"),
        ((good, "-o", tmp_path / "no" / "such" / "dir.svg"), "cannot write"),
        ((good, "-o", tmp_path / "x.pdf"), ".svg or .png"),
        ((good, "-o", tmp_path / "x.svg", "--baseline", "gpt5"), "unknown --baseline"),
        ((good,), "-o FILE.svg or FILE.png is required"),
        (("-o", tmp_path / "x.svg"), "run directories"),
    ]
    for args, message in cases:
        got = run_gpt2c("plot", *args, check=False)
        assert_one_line_error(got)
        assert message in got.stderr.decode(), (args, got.stderr.decode())
    assert not (tmp_path / "x.svg").exists()
    # a file that exists stays as it was when the plot fails
    keep = tmp_path / "keep.svg"
    keep.write_text("old")
    assert run_gpt2c("plot", empty, "-o", keep, check=False).returncode != 0 and keep.read_text() == "old"
    # without gnuplot on the PATH
    got = run_gpt2c("plot", good, "-o", tmp_path / "y.svg", env=dict(os.environ, PATH="/nonexistent"),
                    check=False)
    assert_one_line_error(got)
    assert "gnuplot" in got.stderr.decode() and not (tmp_path / "y.svg").exists()
