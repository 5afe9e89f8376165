# The two commands of the README: `make demo` and `make test`. Everything else is CMake.
BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc)
PYTHON     := $(CURDIR)/.venv/bin/python

.PHONY: all deps build test demo bench bench-train bench-sample unicode-tables fuzz test-faults tsan-serve clean

all: build

deps:
	scripts/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The test suite, built with AddressSanitizer and UndefinedBehaviorSanitizer, the CUDA backend on
# the CUDA-on-CPU runtime (src/ops/cuda/emulate/: every kernel runs without a GPU).
test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPT2C_SANITIZE=ON \
	      -DGPT2C_WERROR=ON -DGPT2C_CUDA_EMULATE=ON -DGPT2C_PYTHON=$(PYTHON) >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS)

# Tokenize the bundled Tiny Shakespeare into shards, then train the d4 preset (4 layers, 256 wide)
# on it from scratch with the full recipe: about 5 minutes on 2 cores. Each run starts afresh.
DEMO_DIR ?= out/demo-d4
demo: deps build
	$(BUILD)/gpt2c prepare --input data/tinyshakespeare/input.txt --split-blank-lines \
	      --out-dir out/tinyshakespeare --quiet
	rm -rf $(DEMO_DIR)
	$(BUILD)/gpt2c train --model d4 --data 'out/tinyshakespeare/train_*.bin' \
	      --val-data 'out/tinyshakespeare/val_*.bin' --out-dir $(DEMO_DIR) \
	      --batch-size 8 --seq-len 128 --max-steps 300 --warmup-steps 30 --lr 1e-3 \
	      --val-every 50 --val-steps 8 --tensorboard $(DEMO_DIR)/tensorboard \
	      --hellaswag data/hellaswag/hellaswag_val_full.txt.bz2 --hellaswag-limit 500 \
	      --hellaswag-every 100
	$(BUILD)/gpt2c plot $(DEMO_DIR) -o $(DEMO_DIR)/curves.svg --baseline gpt2-124m
	@echo "the run's curves: $(DEMO_DIR)/curves.svg; live: $(BUILD)/gpt2c serve --runs $(dir $(DEMO_DIR))"
	@echo "try it in a browser:  $(BUILD)/gpt2c serve --model $(DEMO_DIR)/model   (then open http://127.0.0.1:8080/)"

# gpt2c serve built with ThreadSanitizer under a short concurrent load (not part of make test).
tsan-serve: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF -DGPT2C_CUDA=OFF \
	      -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
	      -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
	cmake --build build-tsan -j $(JOBS) --target gpt2c_cli
	$(PYTHON) tests/serve_tsan.py build-tsan/gpt2c

bench: deps build
	$(PYTHON) bench/tokenizer_bench.py --build-dir $(BUILD)

# Training step time (CPU, fp32 and bf16) against PyTorch: Debian's torch 1.13, and PyPI's torch
# 2.x eager and under torch.compile (installed by the benchmark into .venv-torch2 the first time:
# about 5 GB, a few minutes): about 30 minutes on 2 cores. Flags go in TRAIN_BENCH_ARGS, e.g.
# TRAIN_BENCH_ARGS="--cpu-isa avx2" (every side as on an AVX2-only CPU; fp32 only: about 25
# minutes), "--no-torch2", "--quick" (a 3-minute smoke run).
TRAIN_BENCH_ARGS ?=
bench-train: deps build
	$(PYTHON) bench/train_bench.py --build-dir $(BUILD) $(TRAIN_BENCH_ARGS)

# Sampling speed (gpt2c sample, KV cache) against PyTorch with a KV cache, d12 float32, and where
# the time goes (memory bandwidth, the matmuls replayed), then against llama.cpp on the same weights
# (f32 and f16 GGUF; gpt2c fp32 and bf16): about 10 + 3 minutes on 2 cores, plus 5-15 minutes the
# first time (llama.cpp built from source into .venv-llama). Flags go in SAMPLE_BENCH_ARGS, e.g.
# SAMPLE_BENCH_ARGS="--no-torch --cpu-isa avx2" (llama.cpp alone, as on an AVX2-only CPU: a second
# llama.cpp build, .venv-llama-avx2).
SAMPLE_BENCH_ARGS ?=
bench-sample: deps build
	$(PYTHON) bench/sample_bench.py --build-dir $(BUILD) $(SAMPLE_BENCH_ARGS)

# Regenerate src/tokenizer/unicode_tables.c (committed) from the pinned Unicode database.
unicode-tables: deps
	$(PYTHON) scripts/gen_unicode_tables.py > src/tokenizer/unicode_tables.c

clean:
	rm -rf $(BUILD) $(TEST_BUILD)

# Every reader under libFuzzer (clang, ASan+UBSan) for FUZZ_SECONDS each: the tokenizer,
# safetensors, config.json, shards, prepare's jsonl, the resume state, serve's request JSON
# (scripts/fuzz.sh; not part of `make test`).
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) scripts/fuzz.sh

# kill -9 at random moments, a full disk (root for its tmpfs) and the server under a 5-minute load
# (tests/fault/; about 10 minutes, not part of `make test`).
test-faults: deps build
	$(PYTHON) tests/fault/kill_resume.py --build-dir $(BUILD)
	$(PYTHON) tests/fault/full_disk.py --build-dir $(BUILD)
	$(PYTHON) tests/fault/serve_soak.py --build-dir $(BUILD)
