"""Tokenizer benchmark: gpt2c against tiktoken (the "gpt2" encoding), on this machine, in one run.

What is measured
  1. Single-thread encode throughput (MB of UTF-8 input per second). gpt2c is called in-process
     through ctypes on libgpt2c.so (gpt2c_encode); tiktoken through Encoding.encode_ordinary,
     which has the same semantics ("<|endoftext|>" is ordinary text). Inputs: tinyshakespeare,
     a deterministic mixed-script text (built below, described in the output), and optionally
     a file given with --input.
  2. Thread scaling of `gpt2c prepare` (text file -> llm.c token shards) on two ~22 MB corpora
     (tinyshakespeare with shuffled lines, and the mixed text), for 1, 2, 4, ... threads up to
     the CPU count, and for reference tiktoken's encode_ordinary_batch with the same thread
     counts on the same text cut into ~64 KB pieces. The shuffled tinyshakespeare corpus repeats
     a small vocabulary, so gpt2c's word cache is nearly always hit there: the tokenizing gets
     cheap and fixed costs (start-up, writing shards) weigh more.
  The run also reports how busy the machine was with other processes meanwhile.

Why the comparison is fair
  * Both tokenizers see the same bytes in the same process run, the repetitions alternate
    (gpt2c, tiktoken, gpt2c, ...) so drifts in clock speed or machine load hit both alike, and
    the median of the repetitions is reported.
  * gpt2c's encoder keeps a cache of recently encoded words. Every timed gpt2c repetition makes
    a fresh encoder, inside the timed region, so the cache starts cold each time; tiktoken has
    no state that carries over between calls. (The vocabulary tables are built into the
    library / the Encoding object once, outside the timing, for both.)
  * Before timing, the ids of both are checked to be equal for every input.
  * tiktoken's time includes building the Python list of ids it returns, which is part of its
    API; gpt2c's includes growing its C array. Decoding the input to a Python str for tiktoken
    is done once beforehand and is not timed.
  * The garbage collector is off during the timed calls.
  * `gpt2c prepare` is timed as a whole process (start-up, reading, tokenizing, writing shards),
    so its MB/s is a little pessimistic next to tiktoken's pure in-memory batch encode.

Run from the repository root:  .venv/bin/python bench/tokenizer_bench.py [--quick]
"""
import ast
import contextlib
import ctypes
import datetime
import gc
import importlib.metadata
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import bench_parser

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "data/tinyshakespeare/input.txt"
SENTENCES_FILE = ROOT / "tests/test_tiktoken.py"
MIXED_SEED = 20240520
CORPUS_SEED = 1234
BATCH_PIECE_BYTES = 64 * 1024

MB = 1e6


# ---- gpt2c through ctypes ----

class Error(ctypes.Structure):
    _fields_ = [("msg", ctypes.c_char * 512)]


class Ids(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(ctypes.c_uint32)),
                ("len", ctypes.c_size_t),
                ("cap", ctypes.c_size_t)]


class Gpt2c:
    """The few libgpt2c functions the benchmark needs, with one shared tokenizer."""

    def __init__(self, so_path):
        lib = ctypes.CDLL(str(so_path))
        vp, err_p = ctypes.c_void_p, ctypes.POINTER(Error)
        lib.gpt2c_tokenizer_new.argtypes, lib.gpt2c_tokenizer_new.restype = [err_p], vp
        lib.gpt2c_tokenizer_free.argtypes, lib.gpt2c_tokenizer_free.restype = [vp], None
        lib.gpt2c_encoder_new.argtypes, lib.gpt2c_encoder_new.restype = [vp, err_p], vp
        lib.gpt2c_encoder_free.argtypes, lib.gpt2c_encoder_free.restype = [vp], None
        lib.gpt2c_encode.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t,
                                     ctypes.POINTER(Ids), err_p]
        lib.gpt2c_encode.restype = ctypes.c_int
        lib.gpt2c_ids_free.argtypes, lib.gpt2c_ids_free.restype = [ctypes.POINTER(Ids)], None
        self.lib = lib
        err = Error()
        self.tok = lib.gpt2c_tokenizer_new(ctypes.byref(err))
        if not self.tok:
            raise RuntimeError("gpt2c_tokenizer_new: " + err.msg.decode(errors="replace"))

    def encode_timed(self, data):
        """Encode bytes with a fresh (cold-cache) encoder; returns (seconds, token count).
        The encoder's creation is inside the timed region."""
        lib, err, ids = self.lib, Error(), Ids()
        t0 = time.perf_counter()
        enc = lib.gpt2c_encoder_new(self.tok, ctypes.byref(err))
        rc = -1 if not enc else lib.gpt2c_encode(enc, data, len(data), ctypes.byref(ids),
                                                 ctypes.byref(err))
        lib.gpt2c_encoder_free(enc)
        seconds = time.perf_counter() - t0
        n = ids.len
        lib.gpt2c_ids_free(ctypes.byref(ids))
        if rc != 0:
            raise RuntimeError("gpt2c_encode: " + err.msg.decode(errors="replace"))
        return seconds, n

    def encode(self, data):
        """Encode bytes; returns the ids as a Python list (for checking, not timing)."""
        lib, err, ids = self.lib, Error(), Ids()
        enc = lib.gpt2c_encoder_new(self.tok, ctypes.byref(err))
        rc = -1 if not enc else lib.gpt2c_encode(enc, data, len(data), ctypes.byref(ids),
                                                 ctypes.byref(err))
        lib.gpt2c_encoder_free(enc)
        out = ids.data[:ids.len] if rc == 0 else None
        lib.gpt2c_ids_free(ctypes.byref(ids))
        if rc != 0:
            raise RuntimeError("gpt2c_encode: " + err.msg.decode(errors="replace"))
        return out

    def close(self):
        self.lib.gpt2c_tokenizer_free(self.tok)
        self.tok = None


def reference_encoding():
    """tiktoken's "gpt2" Encoding built offline from data/gpt2 (the one the tests use)."""
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import reference_encoding as make
    return make()


# ---- inputs ----

def shakespeare_lines():
    return SHAKESPEARE.read_text(encoding="utf-8").splitlines(keepends=True)


def test_sentences():
    """The SENTENCES list of tests/test_tiktoken.py (read with ast: no need to import pytest)."""
    tree = ast.parse(SENTENCES_FILE.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SENTENCES"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("no SENTENCES list in " + str(SENTENCES_FILE))


def scramble_words(sentence, rng):
    """The sentence with the characters of each space-separated word shuffled: same scripts and
    character mix, but words that are new to a word cache."""
    words = sentence.split(" ")
    out = []
    for w in words:
        chars = list(w)
        rng.shuffle(chars)
        out.append("".join(chars))
    return " ".join(out)


def mixed_text(target_bytes, sentences, lines):
    """A deterministic mixed-script text: blocks of the test SENTENCES (many scripts, emoji, code,
    odd white space) in a seeded random order, each sentence verbatim or word-scrambled with
    equal chance, alternating with runs of 5-20 consecutive tinyshakespeare lines."""
    rng = random.Random(MIXED_SEED)
    parts, size = [], 0
    while size < target_bytes:
        block = list(sentences)
        rng.shuffle(block)
        for s in block:
            s = s if rng.random() < 0.5 else scramble_words(s, rng)
            parts.append(s + "\n")
            size += len(parts[-1].encode("utf-8"))
        start = rng.randrange(len(lines) - 20)
        run = "".join(lines[start:start + rng.randint(5, 20)])
        parts.append(run)
        size += len(run.encode("utf-8"))
    return "".join(parts)


def shuffled_corpus(lines, copies):
    """tinyshakespeare concatenated `copies` times, each copy with its lines in a different
    seeded order, so no two copies are the same text."""
    rng = random.Random(CORPUS_SEED)
    parts = []
    for _ in range(copies):
        copy = list(lines)
        rng.shuffle(copy)
        parts.append("".join(copy))
    return "".join(parts)


def batch_pieces(text, piece_bytes):
    """Cut text at line ends into pieces of about piece_bytes (for encode_ordinary_batch)."""
    pieces, cur, size = [], [], 0
    for line in text.splitlines(keepends=True):
        cur.append(line)
        size += len(line)
        if size >= piece_bytes:
            pieces.append("".join(cur))
            cur, size = [], 0
    if cur:
        pieces.append("".join(cur))
    return pieces


def read_user_input(path):
    """A --input file as text. tiktoken's encode_ordinary takes str, so invalid UTF-8 is replaced
    (U+FFFD) and both tokenizers get the replaced text."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        print(f"note: {path} is not valid UTF-8; bad bytes replaced by U+FFFD for both tokenizers")
        return data.decode("utf-8", errors="replace")


# ---- measurements ----

@contextlib.contextmanager
def no_gc():
    """The garbage collector off (after a collection), so it does not run inside a timing."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def timed(fn):
    """Seconds one call of fn takes, with the garbage collector off."""
    with no_gc():
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def check_equal(gpt2c, enc, data, text, name):
    ours, ref = gpt2c.encode(data), enc.encode_ordinary(text)
    if ours != ref:
        first = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b),
                     min(len(ours), len(ref)))
        raise AssertionError(f"{name}: gpt2c and tiktoken differ at token {first} "
                             f"(gpt2c {len(ours)} ids, tiktoken {len(ref)} ids)")
    return len(ref)


def bench_single(gpt2c, enc, name, text, reps):
    """Alternate gpt2c and tiktoken `reps` times each on one input; returns a result dict."""
    data = text.encode("utf-8")
    ntokens = check_equal(gpt2c, enc, data, text, name)
    gpt2c.encode_timed(data)  # warm up: page in the library's tables
    enc.encode_ordinary(text)
    ours, theirs = [], []
    for _ in range(reps):
        with no_gc():
            ours.append(gpt2c.encode_timed(data)[0])
        theirs.append(timed(lambda: enc.encode_ordinary(text)))
    res = {"name": name, "bytes": len(data), "tokens": ntokens,
           "gpt2c_s": statistics.median(ours), "tiktoken_s": statistics.median(theirs),
           "gpt2c_all": ours, "tiktoken_all": theirs}
    res["gpt2c_mbs"] = len(data) / res["gpt2c_s"] / MB
    res["tiktoken_mbs"] = len(data) / res["tiktoken_s"] / MB
    res["ratio"] = res["gpt2c_mbs"] / res["tiktoken_mbs"]
    return res


def thread_counts():
    n = os.cpu_count() or 1
    counts, t = [], 1
    while t < n:
        counts.append(t)
        t *= 2
    return counts + [n]


def run_prepare(gpt2c_bin, corpus, out_dir, threads):
    """Wall seconds of one `gpt2c prepare` run into an empty out_dir."""
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [str(gpt2c_bin), "prepare", "--input", str(corpus), "--out-dir", str(out_dir),
           "--threads", str(threads), "--quiet", "--val-tokens", "0"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')}")
    return seconds


def bench_scaling(gpt2c_bin, enc, name, text, reps, with_tiktoken):
    """gpt2c prepare (and tiktoken encode_ordinary_batch) for each thread count; rounds alternate
    over thread counts and tools so all see the same conditions."""
    counts = thread_counts()
    nbytes = len(text.encode("utf-8"))
    pieces = batch_pieces(text, BATCH_PIECE_BYTES) if with_tiktoken else []
    prep = {t: [] for t in counts}
    tik = {t: [] for t in counts}
    with tempfile.TemporaryDirectory(prefix="gpt2c-bench-") as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(text, encoding="utf-8")
        out_dir = Path(tmp) / "shards"
        run_prepare(gpt2c_bin, corpus, out_dir, counts[-1])  # warm up (page cache)
        for _ in range(reps):
            for t in counts:
                prep[t].append(run_prepare(gpt2c_bin, corpus, out_dir, t))
                if with_tiktoken:
                    tik[t].append(timed(lambda: enc.encode_ordinary_batch(pieces, num_threads=t)))
    rows = []
    base_p = statistics.median(prep[1])
    base_t = statistics.median(tik[1]) if with_tiktoken else None
    for t in counts:
        row = {"threads": t, "prep_s": statistics.median(prep[t]), "prep_all": prep[t]}
        row["prep_mbs"] = nbytes / row["prep_s"] / MB
        row["prep_speedup"] = base_p / row["prep_s"]
        if with_tiktoken:
            row["tik_s"] = statistics.median(tik[t])
            row["tik_mbs"] = nbytes / row["tik_s"] / MB
            row["tik_speedup"] = base_t / row["tik_s"]
        rows.append(row)
    return {"name": name, "bytes": nbytes, "pieces": len(pieces), "rows": rows}


# ---- other load on the machine ----

def busy_cpu_seconds():
    """CPU seconds all processes have spent so far, machine-wide (from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMonitor:
    """How many CPUs other processes kept busy while the benchmark ran: timings taken on a busy
    machine (a build, tests) are not worth reporting, and thread scaling suffers most."""

    def __init__(self):
        self.busy0, self.own0, self.t0 = busy_cpu_seconds(), own_cpu_seconds(), time.monotonic()

    def other_cpus(self):
        busy = busy_cpu_seconds()
        if busy is None or self.busy0 is None:
            return None
        other = (busy - self.busy0) - (own_cpu_seconds() - self.own0)
        return max(0.0, other) / max(1e-9, time.monotonic() - self.t0)


def report_load(other, during="the run",
                advice="rerun on an idle machine before reporting these numbers"):
    """The line every benchmark ends with: how busy other processes kept the CPUs (from
    LoadMonitor.other_cpus), with a warning when the numbers should not be reported."""
    if other is None:
        return
    print(f"other processes kept {other:.2f} of {os.cpu_count()} CPUs busy during {during}"
          + ("" if other < 0.1 else f" -- WARNING: the machine was not idle; {advice}"))


# ---- report ----

def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_flags(build_dir):
    flags = Path(build_dir) / "CMakeFiles/gpt2c_objects.dir/flags.make"
    try:
        for line in flags.read_text().splitlines():
            if line.startswith("C_FLAGS"):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return rev or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def print_header(build_dir, args):
    print("# gpt2c tokenizer benchmark")
    print(f"date:      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"cpu:       {cpu_model()}")
    print(f"cpus:      {os.cpu_count()} (usable by this process: {len(os.sched_getaffinity(0))})")
    print(f"os:        {platform.system()} {platform.release()}")
    print(f"python:    {platform.python_version()}  tiktoken {importlib.metadata.version('tiktoken')}")
    print(f"gpt2c:     {git_revision()}  build {build_dir}  C_FLAGS: {build_flags(build_dir)}")
    print(f"settings:  reps={args.reps}{'  (quick)' if args.quick else ''}; medians reported")
    print()


def size_str(nbytes):
    return f"{nbytes / MB:.1f} MB" if nbytes >= 100_000 else f"{nbytes / 1000:.1f} KB"


def print_single(results, mixed_note):
    print("## 1. Single-thread encode (ids checked equal to tiktoken's)")
    print(f"mixed input: {mixed_note}")
    for r in results:
        g = ", ".join(f"{s * 1000:.3g}" for s in r["gpt2c_all"])
        t = ", ".join(f"{s * 1000:.3g}" for s in r["tiktoken_all"])
        print(f"  {r['name']}: {size_str(r['bytes'])}, {r['tokens']} tokens; "
              f"ms per rep gpt2c [{g}] tiktoken [{t}]")
    print()


def print_scaling(scalings, notes):
    print("## 2. Thread scaling (`gpt2c prepare --val-tokens 0 --quiet`, whole process)")
    for sc in scalings:
        print(f"corpus {sc['name']}: {notes[sc['name']]}; {sc['bytes'] / MB:.1f} MB, one document")
        for row in sc["rows"]:
            p = ", ".join(f"{s:.2f}" for s in row["prep_all"])
            print(f"  threads={row['threads']}: gpt2c prepare seconds per rep [{p}]")
    if scalings and scalings[0]["pieces"]:
        print(f"tiktoken encode_ordinary_batch: the same text cut at line ends into pieces of "
              f"~{BATCH_PIECE_BYTES // 1024} KB ({scalings[0]['pieces']} for "
              f"{scalings[0]['name']}), num_threads = threads")
    print()


def print_single_table(results):
    print("Single-thread encode, in-process (gpt2c_encode via ctypes, fresh encoder per run, "
          "vs tiktoken encode_ordinary; median MB/s):")
    print()
    print("| input | size | gpt2c MB/s | tiktoken MB/s | gpt2c / tiktoken |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['name']} | {size_str(r['bytes'])} | {r['gpt2c_mbs']:.1f} | "
              f"{r['tiktoken_mbs']:.1f} | {r['ratio']:.2f}x |")
    print()


def print_scaling_table(scalings):
    has_tik = "tik_s" in scalings[0]["rows"][0]
    print("Thread scaling (`gpt2c prepare`, whole process: start-up, tokenizing, writing shards"
          + ("; vs tiktoken encode_ordinary_batch, in memory" if has_tik else "")
          + "; medians):")
    print()
    head = "| corpus | threads | gpt2c prepare s | gpt2c MB/s | speedup |"
    rule = "|---|---:|---:|---:|---:|"
    if has_tik:
        head += " tiktoken batch s | tiktoken MB/s | speedup |"
        rule += "---:|---:|---:|"
    print(head)
    print(rule)
    for sc in scalings:
        for row in sc["rows"]:
            line = (f"| {sc['name']} ({sc['bytes'] / MB:.0f} MB) | {row['threads']} | "
                    f"{row['prep_s']:.2f} | {row['prep_mbs']:.1f} | {row['prep_speedup']:.2f}x |")
            if has_tik:
                line += (f" {row['tik_s']:.2f} | {row['tik_mbs']:.1f} |"
                         f" {row['tik_speedup']:.2f}x |")
            print(line)
    print()


def main():
    ap = bench_parser(__doc__)
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per measurement")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions and smaller inputs (a smoke run, not for reporting)")
    ap.add_argument("--input", type=Path, help="also measure single-thread encode on this file")
    ap.add_argument("--no-tiktoken-batch", action="store_true",
                    help="skip tiktoken encode_ordinary_batch in the scaling part")
    args = ap.parse_args()
    if args.quick:
        args.reps = min(args.reps, 2)
    build_dir = Path(args.build_dir)
    if not build_dir.is_absolute():
        build_dir = (Path.cwd() / build_dir) if (Path.cwd() / build_dir).exists() else ROOT / build_dir
    so_path, gpt2c_bin = build_dir / "libgpt2c.so", build_dir / "gpt2c"
    for p in (so_path, gpt2c_bin):
        if not p.exists():
            sys.exit(f"missing {p}: build first (cmake -S . -B build && cmake --build build)")

    print_header(build_dir, args)
    load = LoadMonitor()
    enc = reference_encoding()
    gpt2c = Gpt2c(so_path)
    lines = shakespeare_lines()

    mixed_target = 1_000_000 if args.quick else 3_000_000
    mixed = mixed_text(mixed_target, test_sentences(), lines)
    mixed_note = (f"{len(test_sentences())} SENTENCES of tests/test_tiktoken.py in seeded "
                  f"shuffled order (seed {MIXED_SEED}), each verbatim or word-scrambled (50/50), "
                  "alternating with runs of 5-20 tinyshakespeare lines; "
                  f"{len(mixed.encode('utf-8')) / MB:.2f} MB, "
                  f"{sum(ord(c) >= 128 for c in mixed) / len(mixed):.0%} non-ASCII characters")
    inputs = [("tinyshakespeare", SHAKESPEARE.read_text(encoding="utf-8")), ("mixed", mixed)]
    if args.input:
        inputs.append((args.input.name, read_user_input(args.input)))
    results = [bench_single(gpt2c, enc, name, text, args.reps) for name, text in inputs]
    gpt2c.close()
    print_single(results, mixed_note)

    copies = 5 if args.quick else 20
    corpora = {"shakespeare-x%d" % copies: shuffled_corpus(lines, copies)}
    notes = {"shakespeare-x%d" % copies: f"tinyshakespeare x{copies}, each copy's lines in a "
             f"different seeded order (seed {CORPUS_SEED})"}
    if not args.quick:
        big_mixed = mixed_text(len(corpora["shakespeare-x20"]), test_sentences(), lines)
        corpora["mixed-large"] = big_mixed
        notes["mixed-large"] = "the mixed input above, generated to the same size"
    scalings = [bench_scaling(gpt2c_bin, enc, name, text, args.reps, not args.no_tiktoken_batch)
                for name, text in corpora.items()]
    print_scaling(scalings, notes)

    print("## Results (markdown)")
    print()
    print_single_table(results)
    print_scaling_table(scalings)

    report_load(load.other_cpus(), advice="thread scaling and throughput are understated, rerun "
                "on an idle machine")
    for r in results:
        if r["ratio"] < 2.0:
            print(f"NOTE: gpt2c is less than 2x tiktoken on {r['name']}: {r['ratio']:.2f}x")


if __name__ == "__main__":
    main()
