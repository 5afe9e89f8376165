"""`gpt2c serve --runs DIR`: the runs under DIR as JSON (each log read on from where the page
left it), and the live page in headless Chromium, whose charts hold a finished run's points and
gain new ones while a run trains."""
import json
import signal
import subprocess
import urllib.error
import urllib.request

import numpy as np
import pytest

import torch_gpt2 as ref
from conftest import GPT2C, SANITIZER_MARKS, run_gpt2c, wait_for
from test_serve import browser  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    d = tmp_path_factory.mktemp("shard")
    ref.write_shard(d / "train_000000.bin", np.arange(1000, 1000 + 30000, dtype=np.uint16) % 50257)
    return d


def train_args(shard, out, steps):
    return ["train", "--model", "d2", "--max-seq-len", "64", "--data", str(shard / "train_*.bin"),
            "--out-dir", str(out), "--batch-size", "2", "--seq-len", "32", "--max-steps", str(steps),
            "--val-every", "0", "--ckpt-every", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shard):
    """DIR with a finished run ("done") and one that trains while the tests run ("live")."""
    d = tmp_path_factory.mktemp("runs")
    run_gpt2c(*train_args(shard, d / "done", 12))
    (d / ".hidden").mkdir()
    (d / "not-a-run").mkdir()
    live = subprocess.Popen([str(GPT2C), *train_args(shard, d / "live", 100000)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (d / "live" / "log.jsonl").exists(), what="the live run's log")
    yield d
    live.send_signal(signal.SIGKILL)
    live.wait()


@pytest.fixture(scope="module")
def server(runs):
    proc = subprocess.Popen([str(GPT2C), "serve", "--runs", str(runs), "--port", "0", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline().decode()
    assert "runs" in line and "http://" in line, line + proc.stderr.read().decode()
    url = line.split(" on ")[1].strip()[:-len("runs")]
    yield url
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and not any(m in err.decode() for m in SANITIZER_MARKS), err.decode()


def get(url, data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_runs_as_json(server, runs):
    status, body = get(server + "runs.json")
    listed = json.loads(body)
    assert status == 200 and [r["name"] for r in listed] == ["done", "live"]
    log = (runs / "done" / "log.jsonl").read_bytes()
    status, body = get(server + "runs/log?name=done&from=0")
    got = json.loads(body)
    assert status == 200 and got["next"] == len(log)
    assert got["records"] == [json.loads(l) for l in log.decode().splitlines()]
    first_line = log.index(b"\n") + 1  # from the second record on
    got = json.loads(get(server + f"runs/log?name=done&from={first_line}")[1])
    assert got["records"] == [json.loads(l) for l in log[first_line:].decode().splitlines()]
    got = json.loads(get(server + f"runs/log?name=done&from={len(log) + 10}")[1])
    assert got.get("restarted") and len(got["records"]) == len(log.splitlines())
    for bad, status in (("name=../done", 404), ("name=.hidden", 404), ("name=not-a-run", 404),
                        ("name=done&from=x", 400), ("", 404)):
        assert get(server + "runs/log?" + bad)[0] == status, bad
    status, body = get(server + "v1/completions", data=b'{"prompt": "x"}')
    assert status == 404 and b"no model" in body
    assert b"gpt2c runs" in get(server)[1] and b"gpt2c runs" in get(server + "runs")[1]
    assert get(server + "chart.js")[1].startswith(b"/*!\n * Chart.js")


def test_the_live_page_in_a_browser(server, runs, browser):  # noqa: F811
    b = browser
    b.get(server + "runs")
    points = lambda name, key="loss": b.execute_script(
        f"const r = window.gpt2cRuns && window.gpt2cRuns.get('{name}'); return r ? r.series['{key}'].length : -1")
    done = sum("loss" in json.loads(l) for l in (runs / "done" / "log.jsonl").read_text().splitlines())
    wait_for(lambda: points("done") == done, what="the finished run's points")
    # the chart holds them: its dataset is the series
    assert b.execute_script("return window.gpt2cCharts['loss'].data.datasets"
                            ".filter(d => d.label === 'done')[0].data.length") == done
    n = wait_for(lambda: points("live") > 0 and points("live"), what="the live run's first points")
    wait_for(lambda: points("live") > n, timeout=60, what="new points while it trains")
    legend = b.execute_script("return document.getElementById('runs').innerText")
    assert "done" in legend and "live" in legend
    b.set_window_size(390, 844)  # a phone: nothing wider than the screen
    assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
