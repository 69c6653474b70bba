"""TVMDSOOp: TVM-compiled functions inside TensorFlow, eager and in tf.function, zero-copy."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
import tensorflow as tf  # noqa: E402  (pinned in requirements.txt)

from tvmbridge import tensorflow as tvm_tf  # noqa: E402
from tf_libraries import (  # noqa: E402
    build_in_place_library, build_relax_library, build_te_library)


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tvm_libraries")
    return {
        "te": tvm_tf.Module(build_te_library(folder / "te.so")),
        "relax": tvm_tf.Module(build_relax_library(folder / "relax.so")),
        "in_place": tvm_tf.Module(build_in_place_library(folder / "in_place.so")),
    }


def vector(*values):
    return tf.constant(values, dtype=tf.float32)


def test_one_input_eager_and_in_tf_function(libraries):
    addone = libraries["te"].func("addone", output_shape=[2], output_dtype="float32")
    x = vector(1.0, 2.0)
    np.testing.assert_array_equal(addone(x).numpy(), [2.0, 3.0])
    doubled = tf.function(lambda value: addone(value) * 2)(x)
    np.testing.assert_array_equal(doubled.numpy(), [4.0, 6.0])


def test_two_inputs_with_a_shape_computed_in_the_graph(libraries):
    left, right = vector(1, 2, 3), vector(10, 20, 30)
    vector_add = libraries["te"].func("vector_add", output_shape=tf.shape(left))
    np.testing.assert_array_equal(vector_add(left, right).numpy(), [11, 22, 33])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)] * 2)
    def add_any_length(a, b):
        return libraries["te"].func("vector_add", output_shape=tf.shape(a))(a, b)

    assert add_any_length.get_concrete_function().outputs[0].shape.as_list() == [None]
    for n in (1, 5, 1000):
        a, b = tf.random.normal([n]), tf.random.normal([n])
        np.testing.assert_allclose(add_any_length(a, b).numpy(), (a + b).numpy(), rtol=1e-6)


def test_output_shape_as_a_list_of_scalar_tensors(libraries):
    """TVMDSOOp's users wrote `output_shape=[tf.shape(x)[0]]`: a list holding scalar tensors."""
    x = vector(1, 2, 3)
    addone = libraries["te"].func("addone", output_shape=[tf.shape(x)[0]])
    np.testing.assert_array_equal(addone(x).numpy(), [2, 3, 4])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def addone_any_length(a):
        return libraries["te"].func("addone", output_shape=[tf.shape(a)[0]])(a)

    for n in (1, 7):
        a = tf.random.normal([n])
        np.testing.assert_allclose(addone_any_length(a).numpy(), (a + 1).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="ints and scalar tensors"):
        libraries["te"].func("addone", output_shape=[tf.shape(x)])(x)


def test_tf_compat_v1_placeholders_and_session(libraries):
    """Graphs built as TVMDSOOp's users built them: placeholders, run in a v1 Session."""
    graph = tf.Graph()
    with graph.as_default():
        left = tf.compat.v1.placeholder(tf.float32, shape=[None])
        right = tf.compat.v1.placeholder(tf.float32, shape=[None])
        vector_add = libraries["te"].func("vector_add", output_shape=[tf.shape(left)[0]])
        total = vector_add(left, right) * 2.0
        relax_doubled = libraries["relax"].func("main")(left)  # main(x) = 2 * x
    with tf.compat.v1.Session(graph=graph) as session:
        for n in (2, 5):
            a, b = np.arange(n, dtype=np.float32), np.full(n, 10, np.float32)
            doubled_sum, doubled = session.run([total, relax_doubled], {left: a, right: b})
            np.testing.assert_array_equal(doubled_sum, (a + b) * 2.0)
            np.testing.assert_array_equal(doubled, a * 2.0)


def test_twelve_inputs(libraries):
    inputs = [tf.fill([7], float(k)) for k in range(12)]
    add12 = libraries["te"].func("add12", output_shape=[7])
    np.testing.assert_array_equal(add12(*inputs).numpy(), np.full(7, sum(range(12))))
    graph_result = tf.function(lambda *xs: add12(*xs))(*inputs)
    np.testing.assert_array_equal(graph_result.numpy(), np.full(7, sum(range(12))))


def test_several_outputs(libraries):
    left, right = vector(1, 2, 3), vector(10, 20, 30)
    both = libraries["te"].func("sum_and_difference", output_shape=[[3], [3]],
                                output_dtype=["float32", "float32"])
    total, difference = both(left, right)
    np.testing.assert_array_equal(total.numpy(), [11, 22, 33])
    np.testing.assert_array_equal(difference.numpy(), [-9, -18, -27])


def test_relax_functions_report_their_output_shapes(libraries):
    x = vector(1, 2, 3)
    np.testing.assert_array_equal(libraries["relax"].func("main")(x).numpy(), [2, 4, 6])
    plus_one, squared = libraries["relax"].func("pair", output_dtype=["float32"] * 2)(x)
    np.testing.assert_array_equal(plus_one.numpy(), [2, 3, 4])
    np.testing.assert_array_equal(squared.numpy(), [1, 4, 9])
    in_graph = tf.function(lambda value: libraries["relax"].func("main")(value) + 1)(x)
    np.testing.assert_array_equal(in_graph.numpy(), [3, 5, 7])


def test_tvm_works_on_tensorflows_own_buffers(libraries):
    # bump_in_place writes its input: the change shows in TensorFlow's tensor only because TVM
    # was handed TensorFlow's buffer itself (the DLPack view is at TensorFlow's address).
    x = vector(1, 2, 3, 4)
    copies_before = tvm_tf.alignment_copies()
    result = libraries["in_place"].func("bump_in_place", output_shape=[4])(x)
    np.testing.assert_array_equal(result.numpy(), [2, 3, 4, 5])
    np.testing.assert_array_equal(x.numpy(), [2, 3, 4, 5])
    assert tvm_tf.alignment_copies() == copies_before


@pytest.mark.parametrize("case, error, fragments", [
    ("missing library", tf.errors.NotFoundError, ["no TVM library", "missing.so"]),
    ("missing function", tf.errors.NotFoundError, ["has no function 'no_such_function'"]),
    ("wrong shape", tf.errors.InvalidArgumentError, ["vector_add", "shape"]),
    ("wrong dtype", tf.errors.InvalidArgumentError, ["addone", "float32"]),
    ("wrong input count", tf.errors.InvalidArgumentError, ["vector_add", "argument"]),
    ("no output shape", tf.errors.InvalidArgumentError, ["needs output_shape"]),
    ("declared shape disagrees", tf.errors.InvalidArgumentError, ["returned output 0",
                                                                  "output_shape says"]),
    ("partly known static shape", tf.errors.InvalidArgumentError, ["not fully known"]),
])
def test_bad_input_raises_tensorflow_errors(libraries, tmp_path, case, error, fragments):
    te, relax = libraries["te"], libraries["relax"]
    calls = {
        "missing library": lambda: tvm_tf.Module(tmp_path / "missing.so"),
        "missing function": lambda: te.func("no_such_function", output_shape=[2])(vector(1, 2)),
        "wrong shape": lambda: te.func("vector_add", output_shape=[2])(vector(1, 2),
                                                                        vector(1, 2, 3)),
        "wrong dtype": lambda: te.func("addone", output_shape=[2])(
            tf.constant([1.0, 2.0], tf.float64)),
        "wrong input count": lambda: te.func("vector_add", output_shape=[2])(vector(1, 2)),
        "no output shape": lambda: te.func("addone")(vector(1, 2)),
        "declared shape disagrees": lambda: relax.func("main", output_shape=[5])(vector(1, 2)),
        "partly known static shape": lambda: te.func(
            "addone", output_shape=tf.TensorShape([None]))(vector(1, 2)),
    }
    with pytest.raises(error) as info:
        calls[case]()
    for fragment in fragments:
        assert fragment in str(info.value)
    # The process and the library are fine afterwards.
    np.testing.assert_array_equal(te.func("addone", output_shape=[1])(vector(1)).numpy(), [2])


def test_misaligned_input_is_copied_once_and_counted(libraries):
    # TensorFlow's allocator aligns to 64 bytes; a tensor imported through DLPack keeps the
    # exporter's address, here 4 or 8 bytes past a multiple of 64.
    storage = np.arange(24, dtype=np.float32)
    offset = next(k for k in (1, 2) if (storage.ctypes.data + 4 * k) % 64 != 0)
    misaligned = tf.experimental.dlpack.from_dlpack(storage[offset:offset + 4].__dlpack__())
    addone = libraries["te"].func("addone", output_shape=[4])
    copies_before = tvm_tf.alignment_copies()
    np.testing.assert_array_equal(addone(misaligned).numpy(), storage[offset:offset + 4] + 1)
    assert tvm_tf.alignment_copies() == copies_before + 1
