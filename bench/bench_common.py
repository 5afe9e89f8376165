"""What the CPU benchmarks share: the machine, the BLAS a process loaded, thread settings, and
running a child process with its own peak memory and CPU time."""
import os
import sys
import subprocess
import tempfile
import time
from pathlib import Path


def loaded_blas(pid="self"):
    """The BLAS / OpenMP shared libraries a process has mapped (from /proc/PID/maps)."""
    libs = set()
    try:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            base = os.path.basename(path)
            if any(k in base for k in ("blas", "gomp", "mkl", "omp.so", "dnnl")):
                libs.add(path)
    except OSError:
        pass
    return sorted(libs)


def thread_env(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def run_measured(cmd, env, cwd=None):
    """Run cmd to completion; returns (returncode, stdout, stderr, usage, wall seconds), usage
    holding this child's own peak RSS (bytes), CPU seconds and minor page faults (os.wait4): not
    a maximum or sum over all children so far."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        use = {"rss": usage.ru_maxrss * 1024, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
               "minflt": usage.ru_minflt}
        return (proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), use, wall)


def gpt2c_blas(gpt2c_bin):
    """The BLAS / OpenMP libraries gpt2c is linked with (ldd)."""
    try:
        out = subprocess.run(["ldd", str(gpt2c_bin)], capture_output=True, text=True).stdout
    except OSError:
        return []
    libs = []
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and any(k in parts[0] for k in ("blas", "gomp", "omp", "dnnl")):
            libs.append(parts[1].split("(")[0].strip())
    return libs


def lscpu():
    info = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, env={"LC_ALL": "C"}).stdout
        for line in out.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                info[k.strip()] = v.strip()
    except OSError:
        pass
    return info


def find_gpt2c(build_dir_arg, root):
    """(build dir, path of its gpt2c): relative to the current directory if it exists there, else
    to the repository root; exits with a message when the binary is missing."""
    build_dir = Path(build_dir_arg)
    if not build_dir.is_absolute():
        build_dir = (Path.cwd() / build_dir) if (Path.cwd() / build_dir).exists() else root / build_dir
    gpt2c_bin = build_dir / "gpt2c"
    if not gpt2c_bin.exists():
        sys.exit(f"missing {gpt2c_bin}: build first (make build)")
    return build_dir, gpt2c_bin
