#!/usr/bin/env bash
# make fuzz: every libFuzzer target (tests/fuzz/*.c) built with ASan+UBSan against a fuzzing build
# of libgpt2c (build-fuzz/), then run for FUZZ_SECONDS each from its seeds (tests/fuzz_seeds/NAME;
# the corpus it grows stays in build-fuzz/corpus/NAME), leaks detected. Prints executions per
# target; exits non-zero if one crashed or leaked (its reproducer is left in build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${JOBS:-$(nproc)}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPT2C_SANITIZE=ON -DBUILD_TESTING=OFF \
      -DGPT2C_CUDA=OFF -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
cmake --build build-fuzz -j "$JOBS" --target gpt2c_static >/dev/null
libs=$(pkg-config --libs jansson libmicrohttpd openblas libisal)
targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls *.c | sed 's/\.c$//')}
status=0 total=0
summary=""
for t in $targets; do
  clang -g -O1 -fsanitize=fuzzer,address,undefined -fopenmp -Iinclude -Isrc -Itests tests/fuzz/$t.c \
        build-fuzz/libgpt2c.a $libs -ldnnl -lbz2 -lm -lpthread -o build-fuzz/fuzz_$t
  mkdir -p build-fuzz/corpus/$t
  log=build-fuzz/fuzz_$t.log
  set +e
  (cd build-fuzz && ./fuzz_$t -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1 corpus/$t ../tests/fuzz_seeds/$t) >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  total=$((total + runs))
  verdict=$([ $rc -eq 0 ] && echo "no crash, no leak" || echo "FAILED (exit $rc, see $log)")
  [ $rc -eq 0 ] || status=1
  summary+=$(printf '%-12s %10s executions in %ss: %s' "$t" "$runs" "$SECONDS_EACH" "$verdict")$'\n'
  rm -rf /dev/shm/gpt2c-fuzz-*
done
printf '%s' "$summary"
echo "all targets: $total executions"
exit $status
