# The two commands of the README: `make demo` and `make test`. Everything else is CMake.
BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc)
PYTHON     := $(CURDIR)/.venv/bin/python

.PHONY: all deps build test demo bench bench-train bench-sample unicode-tables fuzz clean

all: build

deps:
	scripts/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The test suite, built with AddressSanitizer and UndefinedBehaviorSanitizer.
test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPT2C_SANITIZE=ON \
	      -DGPT2C_PYTHON=$(PYTHON) >/dev/null
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
	      --val-every 50 --val-steps 8

bench: deps build
	$(PYTHON) bench/tokenizer_bench.py --build-dir $(BUILD)

# Training step time against PyTorch (float32, CPU): about 9 minutes on 2 cores.
bench-train: deps build
	$(PYTHON) bench/train_bench.py --build-dir $(BUILD)

# Sampling speed (gpt2c sample, KV cache) against PyTorch with a KV cache, d12 float32, and where
# the time goes (memory bandwidth, the matmuls replayed): about 10 minutes on 2 cores.
bench-sample: deps build
	$(PYTHON) bench/sample_bench.py --build-dir $(BUILD)

# Regenerate src/tokenizer/unicode_tables.c (committed) from the pinned Unicode database.
unicode-tables: deps
	$(PYTHON) scripts/gen_unicode_tables.py > src/tokenizer/unicode_tables.c

clean:
	rm -rf $(BUILD) $(TEST_BUILD)

# Fuzz the tokenizer with libFuzzer (clang) for FUZZ_SECONDS; not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPT2C_SANITIZE=ON -DBUILD_TESTING=OFF \
	      -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target gpt2c_static
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc tests/fuzz_tokenizer.c \
	      build-fuzz/libgpt2c.a -ljansson -lpthread -o build-fuzz/fuzz_tokenizer
	mkdir -p build-fuzz/corpus
	build-fuzz/fuzz_tokenizer -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build-fuzz/corpus tests/fuzz_seeds
