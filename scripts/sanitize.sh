#!/usr/bin/env bash
# make sanitize: the C++ tests built with AddressSanitizer + LeakSanitizer + UBSan, then with
# ThreadSanitizer, each in its own build folder (build-address, build-thread). Only tvmbridge's
# code is instrumented; libtorch and TVM run as their wheels ship them, so the suppression
# files in tests/sanitizers/ name reports that start and end inside those libraries.
#   SANITIZERS="address" make sanitize    one of them only
#   GTEST_FILTER=Concurrency.* make sanitize
set -euo pipefail
cd "$(dirname "$0")/.."
python=$PWD/.venv/bin/python
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::FutureWarning}
fixtures=$PWD/build/test-fixtures
"$python" tests/cpp/make_fixtures.py "$fixtures"

for sanitizer in ${SANITIZERS:-address thread}; do
  dir=build-$sanitizer
  echo "== $sanitizer: building $dir"
  cmake -S . -B "$dir" -G Ninja -DTVMBRIDGE_SANITIZER="$sanitizer" \
    -DPython3_EXECUTABLE="$python" > "$dir.configure.log" || { cat "$dir.configure.log"; exit 1; }
  ninja -C "$dir" -j "${JOBS:-2}" tvmbridge_tests
  echo "== $sanitizer: running the C++ tests"
  export TVMBRIDGE_FIXTURES=$fixtures
  case $sanitizer in
    address)
      ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_odr_violation=0 \
      LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/sanitizers/ubsan.supp \
        "$dir/tests/cpp/tvmbridge_tests" --gtest_brief=1
      ;;
    thread)
      # TSan needs its fixed address layout: run without address-space randomisation.
      # ignore_noninstrumented_modules: see tests/sanitizers/tsan.supp.
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$PWD/tests/sanitizers/tsan.supp \
        setarch "$(uname -m)" -R "$dir/tests/cpp/tvmbridge_tests" --gtest_brief=1
      ;;
  esac
  echo "== $sanitizer: clean"
done
