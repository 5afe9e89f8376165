"""The device window's scripts, without a GPU: scripts/gpu-check.sh dry-run end to end at tiny
sizes on the emulated CUDA backend (GPT2C_GPU_CHECK_DRY=1, a -DGPT2C_CUDA_EMULATE=ON build as
make test's), so that the one 10-minute command of a real window does not fail on a script
error; the log comparer it trusts (scripts/gpu_compare_log.py) against a run off by more than its
tolerance; and scripts/gpu-libs.sh making a library that only a carried .deb holds loadable.
Nothing here depends on the clock: the dry run's budgets are ceilings far above its needs."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, GPT2C, ROOT, run_gpt2c

INFO = json.loads(run_gpt2c("info", "--json").stdout)
STAGES = ["env", "binaries", "ops", "compare", "determinism", "sanitizer", "bench", "torch", "llmc"]
LINE = re.compile(r"^(\d) (\w+) +(PASS|FAIL|SKIP) (.*) \((\d+) s\)$")
REF = ROOT / "tests" / "gpu_reference" / "d2_cpu_fp32.jsonl"


@pytest.mark.skipif(not INFO.get("cuda_emulated"), reason="the CUDA backend is not emulated in this build")
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "out"
    # the ops stage on test_ops's first 20 cases (GPT2C_TEST_OPS_CASES): the stage and its
    # summary are what is under test here; `test_ops cuda` in full is the test_ops entry's own
    env = dict(os.environ, GPT2C_GPU_CHECK_DRY="1", GPT2C_GPU_CHECK_GPT2C=str(GPT2C),
               GPT2C_GPU_CHECK_TEST_OPS=str(BUILD / "tests" / "test_ops"), GPT2C_TEST_OPS_CASES="20",
               GPT2C_GPU_CHECK_PYTHON=sys.executable, TMPDIR=str(tmp_path))
    run = subprocess.run([str(ROOT / "scripts" / "gpu-check.sh"), str(out)], env=env, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = (out / "summary.txt").read_text().splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [m.group(2) for m in parsed] == STAGES
    for m in parsed:
        assert m.group(3) in ("PASS", "SKIP"), m.group(0)
        if m.group(3) == "SKIP":  # a skip says why
            assert m.group(4).startswith("reason: ") and len(m.group(4)) > 20, m.group(0)
    status = {m.group(2): m.group(3) for m in parsed}
    assert re.search(r"^3 ops +PASS 20 cases: cpu .* cuda ", "\n".join(lines), re.M), lines
    # what the emulated device can do, it does: only what needs a real GPU is skipped
    assert status["sanitizer"] == "SKIP" and status["llmc"] == "SKIP"
    assert all(status[s] == "PASS" for s in ("env", "binaries", "ops", "compare", "determinism", "bench"))
    # the stdout lines are the summary's, and the device tool brings back at most 8 files
    assert [line for line in run.stdout.splitlines() if LINE.match(line)] == lines
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 0 < len(files) <= 8, files
    # the comparison's table has every compared step, the run's log came back, no scratch is left
    table = (out / "compare.txt").read_text()
    assert re.search(r"^ {4}3 +10\.\d+ +10\.\d+", table, re.M), table
    assert len((out / "gpu_d2_bf16.jsonl").read_text().splitlines()) == 4
    assert not list(tmp_path.glob("gpt2c-gpu-check.*"))


def compare(tmp_path, run_log, **tol):
    args = [sys.executable, str(ROOT / "scripts" / "gpu_compare_log.py"), "--reference", str(REF),
            "--run", str(run_log), "--steps", "10", "--table", str(tmp_path / "table.txt")]
    for k, v in dict(dict(loss_tol=1e-3, norm_rtol=5e-3), **tol).items():
        args += ["--" + k.replace("_", "-"), str(v)]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def test_compare_log_catches_a_drift(tmp_path):
    """The reference against itself passes; one step's loss or norm moved past the tolerance, a
    missing step or a NaN (written as null) fails, naming the step."""
    recs = [json.loads(line) for line in REF.read_text().splitlines()]
    same = tmp_path / "same.jsonl"
    same.write_text(REF.read_text())
    ok = compare(tmp_path, same)
    assert ok.returncode == 0 and ok.stdout.startswith("PASS: 10 steps"), ok.stdout + ok.stderr

    def variant(name, change):
        rs = [dict(r) for r in recs]
        change(rs)
        p = tmp_path / name
        p.write_text("".join(json.dumps(r) + "\n" for r in rs))
        return p

    loss_off = variant("loss.jsonl", lambda rs: rs[7].update(loss=rs[7]["loss"] + 2e-3))
    norm_off = variant("norm.jsonl", lambda rs: rs[3].update(norm=rs[3]["norm"] * 1.01))
    missing = variant("missing.jsonl", lambda rs: rs.pop(5))
    nan = variant("nan.jsonl", lambda rs: rs[2].update(loss=None))
    for path, step in ((loss_off, 7), (norm_off, 3), (missing, 5), (nan, 2)):
        bad = compare(tmp_path, path)
        assert bad.returncode == 1 and bad.stdout.startswith("FAIL"), (path.name, bad.stdout, bad.stderr)
        assert f"out: [{step}]" in bad.stdout, bad.stdout
    # within a looser tolerance the moved loss passes
    assert compare(tmp_path, loss_off, loss_tol=3e-3).returncode == 0
    assert "  OVER" in (tmp_path / "table.txt").read_text()


def test_compare_log_windows_after_the_tight_steps(tmp_path):
    """Past --tight-steps single steps are not compared, so a gradient spike that moved passes;
    a loss that drifted over a whole window fails, naming the window."""
    recs = [json.loads(line) for line in REF.read_text().splitlines()]
    windows = dict(tight_steps=7, window=10, window_loss_tol=0.05, window_norm_rtol=0.25)

    def run(name, change):
        rs = [dict(r) for r in recs]
        for r in rs:
            change(r)
        p = tmp_path / name
        p.write_text("".join(json.dumps(r) + "\n" for r in rs))
        args = [sys.executable, str(ROOT / "scripts" / "gpu_compare_log.py"), "--reference", str(REF),
                "--run", str(p), "--steps", "20", "--loss-tol", "1e-3", "--norm-rtol", "5e-3"]
        for k, v in windows.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        return subprocess.run(args, capture_output=True, text=True, check=False)

    spike = run("spike.jsonl", lambda r: r.update(norm=r["norm"] * 5) if r["step"] == 15 else None)
    assert spike.returncode == 0 and "2 windows of 10" in spike.stdout, spike.stdout + spike.stderr
    drift = run("drift.jsonl", lambda r: r.update(loss=r["loss"] + 0.06) if r["step"] >= 10 else None)
    assert drift.returncode == 1 and "out: ['10-19']" in drift.stdout, drift.stdout + drift.stderr
    early = run("early.jsonl", lambda r: r.update(loss=r["loss"] + 2e-3) if r["step"] == 6 else None)
    assert early.returncode == 1 and "out: [6]" in early.stdout, early.stdout + early.stderr


@pytest.mark.skipif(not (shutil.which("cc") and shutil.which("dpkg-deb")), reason="needs cc and dpkg-deb")
def test_gpu_libs_takes_a_missing_library_from_a_carried_deb(tmp_path):
    """A program linked against a library that only a .deb holds: ldd finds it missing, then
    gpu-libs.sh unpacks the package (not installing it) and names the folder that makes it load."""
    pkg = tmp_path / "pkg"
    libdir = pkg / "usr" / "lib" / "x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (tmp_path / "lib.c").write_text("int gs_answer(void) { return 42; }\n")
    (tmp_path / "main.c").write_text("int gs_answer(void);\nint main(void) { return gs_answer() == 42 ? 0 : 1; }\n")
    so = libdir / "libgsprobe.so.1"
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-soname,libgsprobe.so.1", "-o", str(so), str(tmp_path / "lib.c")],
                   check=True)
    prog = tmp_path / "prog"
    subprocess.run(["cc", "-o", str(prog), str(tmp_path / "main.c"), str(so)], check=True)
    (pkg / "DEBIAN").mkdir()
    (pkg / "DEBIAN" / "control").write_text("Package: libgsprobe1\nVersion: 1\nArchitecture: amd64\n"
                                            "Maintainer: gpt2c tests <t@example.invalid>\nDescription: probe\n")
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(["dpkg-deb", "--build", str(pkg), str(debs / "libgsprobe1.deb")], check=True, capture_output=True)
    shutil.rmtree(pkg)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    assert "libgsprobe.so.1 => not found" in subprocess.run(["ldd", str(prog)], capture_output=True, text=True,
                                                            env=env).stdout
    libs = subprocess.run([str(ROOT / "scripts" / "gpu-libs.sh"), str(debs), str(tmp_path / "prefix"), str(prog)],
                          capture_output=True, text=True, env=env, check=False)
    assert libs.returncode == 0, libs.stderr
    folder = libs.stdout.strip()
    assert folder == str(tmp_path / "prefix" / "needed") and "libgsprobe.so.1 from" in libs.stderr
    assert subprocess.run([str(prog)], env=dict(env, LD_LIBRARY_PATH=folder)).returncode == 0
    # nothing missing: nothing to do, no folder named
    again = subprocess.run([str(ROOT / "scripts" / "gpu-libs.sh"), str(debs), str(tmp_path / "p2"), "/bin/true"],
                           capture_output=True, text=True, env=env, check=True)
    assert again.stdout == "" and not (tmp_path / "p2").exists()
    # a library no carried package holds: it says so and fails
    (debs / "libgsprobe1.deb").unlink()
    gone = subprocess.run([str(ROOT / "scripts" / "gpu-libs.sh"), str(debs), str(tmp_path / "p3"), str(prog)],
                          capture_output=True, text=True, env=env, check=False)
    assert gone.returncode == 1 and "still missing: libgsprobe.so.1" in gone.stderr
