"""What TVMDSOOp costs per call: the same TVM vector add called directly through tvm-ffi,
through TVMDSOOp in eager TensorFlow and inside a tf.function, with TensorFlow's own add for
scale, on 1 and 1,000,000 elements. All contenders take turns in one process.

    python bench/tensorflow_overhead.py [--out bench/results/tensorflow]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tvm  # noqa: E402

from tf_libraries import build_te_library  # noqa: E402
from tvmbridge import tensorflow as tvm_tf  # noqa: E402
from tvmbridge.benchmark import (  # noqa: E402
    measure_interleaved, per_call_lines, per_call_us, repeated)


def measure(library: Path, elements: int, calls: int, rounds: int) -> dict:
    left = np.random.default_rng(0).standard_normal(elements).astype("float32")
    right = np.random.default_rng(1).standard_normal(elements).astype("float32")
    vector_add = tvm.runtime.load_module(str(library))["vector_add"]
    tvm_left, tvm_right = tvm.runtime.tensor(left), tvm.runtime.tensor(right)
    tvm_out = tvm.runtime.tensor(np.empty_like(left))
    tf_left, tf_right = tf.constant(left), tf.constant(right)
    op = tvm_tf.Module(library).func("vector_add", output_shape=[elements])
    in_graph = tf.function(lambda a, b: op(a, b))
    tf_add = tf.function(lambda a, b: a + b)
    expected = left + right
    np.testing.assert_allclose(op(tf_left, tf_right).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(in_graph(tf_left, tf_right).numpy(), expected, rtol=1e-6)
    timings = measure_interleaved({
        "TVM function via tvm-ffi (Python, output preallocated)": repeated(
            lambda: vector_add(tvm_left, tvm_right, tvm_out), calls),
        "TVM function via tvm-ffi (Python, output allocated per call)": repeated(
            lambda: vector_add(tvm_left, tvm_right, tvm.runtime.empty((elements,), "float32")),
            calls),
        "TVMDSOOp, eager": repeated(lambda: op(tf_left, tf_right), calls),
        "TVMDSOOp in a tf.function": repeated(lambda: in_graph(tf_left, tf_right), calls),
        "TensorFlow's add, eager": repeated(lambda: tf.add(tf_left, tf_right), calls),
        "TensorFlow's add in a tf.function": repeated(lambda: tf_add(tf_left, tf_right), calls),
    }, warmup=3, repeat=rounds)
    return per_call_us(timings, calls)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tensorflow")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        library = build_te_library(Path(folder) / "vector_add.so")
        results = {f"{n} elements": measure(library, n, calls, args.rounds)
                   for n, calls in ((1, 2000), (1_000_000, 20))}
    lines = ["# TVMDSOOp per-call cost", "",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
             f"tensorflow-cpu {tf.__version__}, apache-tvm {tvm.__version__}; medians of "
             f"{args.rounds} interleaved rounds.", ""]
    for title, per_call in results.items():
        lines += per_call_lines(f"vector add, {title}", per_call) + [""]
        direct = per_call["TVM function via tvm-ffi (Python, output preallocated)"]["median_us"]
        eager = per_call["TVMDSOOp, eager"]["median_us"]
        graph = per_call["TVMDSOOp in a tf.function"]["median_us"]
        allocating = per_call["TVM function via tvm-ffi (Python, output allocated per call)"][
            "median_us"]
        tf_eager = per_call["TensorFlow's add, eager"]["median_us"]
        tf_graph = per_call["TensorFlow's add in a tf.function"]["median_us"]
        lines += [f"TVMDSOOp over the direct call with a preallocated output: eager "
                  f"+{eager - direct:.2f} us, tf.function +{graph - direct:.2f} us; over the "
                  f"direct call allocating its output: eager +{eager - allocating:.2f} us. "
                  f"Against TensorFlow's own add: eager {eager - tf_eager:+.2f} us, "
                  f"tf.function {graph - tf_graph:+.2f} us.", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.md").write_text("\n".join(lines))
    (args.out / "overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
