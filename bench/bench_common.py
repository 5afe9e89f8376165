"""What the CPU benchmarks share: the machine, the BLAS a process loaded, thread settings, and
running a child process with its own peak memory and CPU time."""
import os
import shutil
import sys
import subprocess
import tarfile
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


def bench_parser(doc):
    """An argument parser for a benchmark: the first line of its docstring, and --build-dir."""
    import argparse
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--build-dir", default="build", help="gpt2c build directory (default: build)")
    return ap


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


def ensure_venv(venv, requirements, log=print):
    """Make the virtual environment `venv` with Debian's /usr/bin/python3 and `pip install -r
    requirements`, unless it is already there for this requirements file (a stamp in the venv holds
    the file's sha256, as scripts/install-deps.sh does for .venv). Returns its python."""
    import hashlib
    python = Path(venv) / "bin/python"
    stamp = Path(venv) / ".requirements.sha256"
    want = hashlib.sha256(Path(requirements).read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python
    log(f"setting up {venv} ({Path(requirements).name}; a few GB, some minutes)")
    t0 = time.monotonic()
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", "-r", str(requirements)])
    if pip.returncode != 0:
        sys.exit(f"pip install -r {requirements} into {venv} failed (exit {pip.returncode})")
    stamp.write_text(want + "\n")
    log(f"{venv} ready ({time.monotonic() - t0:.0f} s)")
    return python


# ---- instruction-set caps: what "a CPU with only LEVEL" means for every library involved ----

# The levels of GPT2C_CPU_ISA (gpt2c caps its own kernels, oneDNN and OpenBLAS itself; `gpt2c
# info` shows what it runs), and for each the settings that cap PyTorch alike. None leaves the
# library's own choice, because the level does not bind it:
#   ATEN_CPU_CAPABILITY   ATen's vectorized kernels (default = no AVX; avx2; avx512 is ATen's top);
#                         torch.compile's inductor reads it too for the vector ISA of its C++
#   ONEDNN_MAX_CPU_ISA    oneDNN (torch's bf16 matmuls; also DNNL_ in oneDNN 2.x, which reads both)
#   MKL_ENABLE_INSTRUCTIONS  MKL (PyPI torch's fp32 GEMM)
#   OPENBLAS_CORETYPE     OpenBLAS (Debian torch's fp32 GEMM; the same cores gpt2c picks)
#   TORCHINDUCTOR_CPP_MARCH  the -march of inductor's C++ (default native, i.e. everything the
#                         machine has, whatever the vector ISA)
#   inductor vector ISA   cap_inductor below: which of inductor's VecISA classes may be picked
CPU_ISA_CAPS = {
    #  level         ATen       oneDNN              MKL       OpenBLAS    -march        inductor
    "x86-64":      ("default", "SSE41",            "SSE4_2", "Prescott", "x86-64",     ""),
    "avx2":        ("avx2",    "AVX2",             "AVX2",   "Haswell",  "x86-64-v3",  "avx2"),
    "avx512":      (None,      "AVX512_CORE",      "AVX512", "SkylakeX", "x86-64-v4",  "avx512"),
    "avx512_bf16": (None,      "AVX512_CORE_BF16", "AVX512", "SkylakeX", "cooperlake", "avx512_bf16"),
    "amx":         (None,      "AVX512_CORE_AMX",  None,     "SkylakeX", None,         None),
}
# /proc/cpuinfo flags that decide the level (and the peers' kernels)
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_isa_env(level):
    """The environment that caps gpt2c and PyTorch to `level` (None: no cap, {})."""
    if not level:
        return {}
    names = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
             "OPENBLAS_CORETYPE", "TORCHINDUCTOR_CPP_MARCH")
    env = {k: v for k, v in zip(names, CPU_ISA_CAPS[level]) if v is not None}
    env["GPT2C_CPU_ISA"] = level
    return env


def cap_inductor(level):
    """Cap torch.compile's C++ vector ISA to `level`, in the process that compiles. Inductor picks
    the first of its VecISA classes this machine passes (AMX > AVX512_VNNI > AVX512 > AVX2) whose
    name contains ATEN_CPU_CAPABILITY: "avx512" still matches AMX, and AVX512 adds -mavx512bf16
    where the CPU has it. So the list it picks from is cut down here (torch._inductor.cpu_vec_isa
    internals; pick_vec_isa reads valid_vec_isa_list through the module). Returns the ISA picked."""
    from torch._inductor import cpu_vec_isa as vi
    want = CPU_ISA_CAPS[level][5] if level else None
    if want is not None:
        found = vi.valid_vec_isa_list()  # probes each ISA by compiling a test (cached)
        keep = [isa for isa in found if str(isa) == want.replace("_bf16", "")]
        for isa in keep:
            if want == "avx512":
                isa._is_avx512_bf16_supported = False
        vi.valid_vec_isa_list = lambda: keep
    isa = vi.pick_vec_isa()
    return f"{isa} ({isa.build_arch_flags() or 'no vector flags'})" if isa else "none (scalar C++)"


def cpu_flags():
    """The ISA_FLAGS this CPU has (from /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in ISA_FLAGS if f in have]
    except OSError:
        pass
    return []


# ---- llama.cpp (llama-cpp-python built from its sdist) as a peer of gpt2c ----

# CMake options of each GPT2C_CPU_ISA level for a llama.cpp build capped alike (ggml picks its CPU
# kernels at compile time: GGML_NATIVE=ON is -march=native; a capped build names each extension).
# None (no cap): the native build. llama-cpp-python's own CMakeLists also builds mtmd (multimodal):
# LLAVA_BUILD=OFF leaves it out (not used, and a third of the build time).
_GGML_X86 = ("AVX", "AVX2", "FMA", "F16C", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI",
             "AVX512_BF16", "AMX_TILE", "AMX_INT8", "AMX_BF16", "AVX_VNNI", "SSE42")
# The levels follow the CPUs they stand for: avx2 Haswell, avx512 Skylake-X (GGML_AVX512 is
# F/CD/VL/DQ/BW), avx512_bf16 Cooper Lake (+ VNNI, BF16), amx Sapphire Rapids (+ VBMI, AMX).
_AVX2 = ("SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2")
_GGML_ON = {
    "x86-64": (),
    "avx2": _AVX2,
    "avx512": _AVX2 + ("AVX512",),
    "avx512_bf16": _AVX2 + ("AVX512", "AVX512_VNNI", "AVX512_BF16"),
    "amx": _AVX2 + ("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_TILE", "AMX_INT8", "AMX_BF16"),
}
LLAMA_CPU_ISAS = tuple(_GGML_ON)


def llama_cmake_args(isa=None):
    """CMAKE_ARGS for llama-cpp-python: the native build (isa None) or one capped at an ISA level."""
    args = ["-DLLAVA_BUILD=OFF", "-DGGML_BLAS=OFF"]
    if isa is None:
        return " ".join(args + ["-DGGML_NATIVE=ON"])
    on = _GGML_ON[isa]
    args.append("-DGGML_NATIVE=OFF")
    args += [f"-DGGML_{f}={'ON' if f in on else 'OFF'}" for f in _GGML_X86]
    return " ".join(args)


def llama_venv_dir(root, isa=None):
    return Path(root) / (".venv-llama" if isa is None else f".venv-llama-{isa}")


def ensure_llama_venv(root, isa=None, log=print):
    """The virtual environment holding llama-cpp-python (built from source: the llama.cpp of its
    sdist) and what llama.cpp's convert_hf_to_gguf.py imports, from bench/requirements-llama.txt;
    idempotent (a stamp of the requirements and the CMake options, as scripts/install-deps.sh
    keeps for .venv). Debian's /usr/bin/python3 with --system-site-packages (Debian's torch and
    numpy, which the converter imports). The sdist itself is kept unpacked in VENV/src: its
    vendor/llama.cpp has the converter. Returns (venv dir, llama.cpp source dir)."""
    import hashlib
    root = Path(root)
    venv = llama_venv_dir(root, isa)
    req = root / "bench/requirements-llama.txt"
    cmake_args = llama_cmake_args(isa)
    want = hashlib.sha256(req.read_bytes() + b"\0" + cmake_args.encode()).hexdigest()
    stamp = venv / ".requirements.sha256"
    pins = [ln.split("#")[0].strip() for ln in req.read_text().splitlines()]
    pin = next(p for p in pins if p.lower().replace("_", "-").startswith("llama-cpp-python=="))
    version = pin.split("==", 1)[1]
    src = venv / "src" / f"llama_cpp_python-{version}"
    if (venv / "bin/python").exists() and stamp.exists() and stamp.read_text().strip() == want \
            and (src / "vendor/llama.cpp/convert_hf_to_gguf.py").exists():
        return venv, src / "vendor/llama.cpp"
    logf = venv / "install.log"
    log(f"llama.cpp: setting up {venv.name} ({pin}, built from source with CMAKE_ARGS=\"{cmake_args}\"; "
        f"about 5-15 minutes on 2 cores; log {logf.relative_to(root)})")
    t0 = time.monotonic()
    stamp.unlink(missing_ok=True)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = str(venv / "bin/python")
    env = dict(os.environ, CMAKE_ARGS=cmake_args, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 1))
    with open(logf, "w") as lf:
        def pip(*a):
            lf.write(f"$ pip {' '.join(a)}\n")
            lf.flush()
            r = subprocess.run([py, "-m", "pip", "--disable-pip-version-check", *a], stdout=lf,
                               stderr=subprocess.STDOUT, env=env)
            if r.returncode != 0:
                sys.exit(f"llama.cpp: pip {' '.join(a)} failed (exit {r.returncode}); see {logf}")
        # the sdist (the same file pip builds below, from pip's cache): its llama.cpp has the converter
        (venv / "src").mkdir(exist_ok=True)
        pip("download", "--no-deps", "--no-binary", "llama-cpp-python", "-d", str(venv / "src"), pin)
        shutil.rmtree(src, ignore_errors=True)
        with tarfile.open(venv / "src" / f"llama_cpp_python-{version}.tar.gz") as tf:
            try:
                tf.extractall(venv / "src", filter="data")
            except TypeError:  # Python before 3.11.4: no extraction filters (a PyPI sdist)
                tf.extractall(venv / "src")
        pip("install", "--no-binary", "llama-cpp-python", "--verbose", "-r", str(req))
    stamp.write_text(want + "\n")
    log(f"llama.cpp: {venv.name} ready in {time.monotonic() - t0:.0f} s")
    return venv, src / "vendor/llama.cpp"
