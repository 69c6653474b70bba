#!/usr/bin/env bash
# make fuzz: libFuzzer over the artifact loader, FUZZ_SECONDS (default 300) per target
# (FUZZ_TARGETS to pick).
#   fuzz_artifact      metadata JSON + library bytes, as TVMModule's __setstate__ gets them
#   fuzz_saved_module  whole saved .pt files through torch::jit::load
# Built with clang (Debian's clang and libclang-rt-dev) in build-fuzz/, ASan + UBSan on. Seeds
# come from a real compiled module; the corpus grows in build-fuzz/corpus-<target>, and
# anything that crashes is kept in build-fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$PWD/.venv/bin/python
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::FutureWarning}
seconds=${FUZZ_SECONDS:-300}
find_clang() { command -v clang++ || ls /usr/bin/clang++-* 2>/dev/null | sort -V | tail -1 || true; }
clang=$(find_clang)
if [[ -z $clang || -z $(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a 2>/dev/null) ]]; then
  if [[ $(id -u) == 0 ]]; then
    echo "fuzz: installing clang and its fuzzer runtime (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
    clang=$(find_clang)
  else
    echo "fuzz: needs clang and libFuzzer: sudo apt-get install -y clang libclang-rt-14-dev" >&2
    exit 1
  fi
fi

dir=build-fuzz
cmake -S . -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER="$clang" -DTVMBRIDGE_SANITIZER=fuzzer \
  -DTVMBRIDGE_BUILD_TESTS=OFF -DPython3_EXECUTABLE="$python" > "$dir.configure.log" \
  || { cat "$dir.configure.log"; exit 1; }
ninja -C "$dir" -j "${JOBS:-2}" fuzz_artifact fuzz_saved_module

"$python" tests/cpp/make_fixtures.py build/test-fixtures
mkdir -p "$dir/seeds-fuzz_artifact" "$dir/seeds-fuzz_saved_module" "$dir/findings"
cp build/test-fixtures/small_compiled.pt "$dir/seeds-fuzz_saved_module/"
"$python" - "$dir/seeds-fuzz_artifact/small" <<'PY'
import sys, torch, tvmbridge  # noqa: F401  (registers the class)
# ScriptObject.__getstate__ gives (the class's own state, its qualified name).
state, _ = torch.jit.load("build/test-fixtures/small_compiled.pt").tvm_module_0.__getstate__()
version, metadata, library = state
open(sys.argv[1], "wb").write(metadata.encode() + b"\0" + library[:4096].numpy().tobytes())
PY

status=0
for target in ${FUZZ_TARGETS:-fuzz_artifact fuzz_saved_module}; do
  corpus=$dir/corpus-$target
  mkdir -p "$corpus"
  max_len=$(stat -c %s "$dir"/seeds-$target/* | sort -n | tail -1)
  echo "== $target: ${seconds}s"
  # fuzz_saved_module: no memcmp hints, or the fuzzer copies the SHA-256 it sees compared
  # into the file, as only a forger would, and the mutated library goes on to dlopen. It runs
  # in fork mode, which records crashing and out-of-memory inputs and goes on: PyTorch's
  # unpickler allocates whatever length a damaged file states (README, security section).
  # Each finding is triaged below by where it happened.
  extra=$([[ $target == fuzz_saved_module ]] \
    && echo "-use_memcmp=0 -fork=1 -ignore_ooms=1 -ignore_crashes=1" || true)
  # allocator_may_return_null: an impossible allocation throws std::bad_alloc, as it would
  # in production, instead of ASan ending the run.
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 "$dir/$target" "$corpus" "$dir/seeds-$target" $extra \
    -max_total_time="$seconds" -max_len="$((max_len + 1024))" -print_final_stats=1 \
    -artifact_prefix="$dir/findings/$target-" > "$dir/$target.log" 2>&1 || status=1
  grep -E "^#[0-9]+" "$dir/$target.log" | tail -1
  grep -E "SUMMARY|stat::number_of_executed_units|stat::new_units|INFO: exiting|ERROR" \
    "$dir/$target.log" | sort | uniq -c
done
echo "findings (inputs kept in $dir/findings), with the innermost PyTorch or tvmbridge frame:"
for finding in "$dir"/findings/*; do
  [[ -e $finding ]] || continue
  target=$(basename "$finding" | cut -d- -f1)
  report=$(ASAN_OPTIONS=detect_leaks=0 "$dir/$target" "$finding" 2>&1 || true)
  where=$(grep -m1 -oE " in (torch|c10|caffe2|tvmbridge)::[^(]*" <<< "$report" \
    || echo " (no PyTorch or tvmbridge frame)")
  echo "  $(basename "$finding"):$where"
done
exit $status
