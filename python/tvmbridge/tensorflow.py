"""TVM-compiled functions inside TensorFlow graphs: the ``TVMDSOOp`` op.

    from tvmbridge import tensorflow as tvm_tf
    addone = tvm_tf.Module("addone.so").func("addone", output_shape=[2], output_dtype="float32")
    addone(tf.constant([1.0, 2.0]))                # eager, or inside a tf.function

The op (``libtvmbridge_tf.so``, C++) loads the library with TVM's runtime and passes tensors
both ways as DLPack views of the other side's buffers (no copies on 64-byte aligned data).
The op library links TensorFlow and TVM's runtime only, not libtorch (``import tvmbridge``
itself still loads tvmbridge's PyTorch runtime).
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

from . import _native

__all__ = ["Function", "Module", "alignment_copies"]

TF_LIBRARY = "libtvmbridge_tf.so"


@functools.cache
def _op_library():
    # TVM-compiled libraries resolve tvm-ffi's C functions from the global namespace;
    # importing tvm_ffi puts libtvm_ffi.so there (TensorFlow loads op libraries locally).
    import tvm_ffi  # noqa: F401

    return tf.load_op_library(str(_native.find_library(TF_LIBRARY)))


def alignment_copies() -> int:
    """How many tensors TVMDSOOp copied in this process because their data was not 64-byte
    aligned (TensorFlow's allocator aligns to 64, so normally none)."""
    import tvm_ffi

    _op_library()
    return int(tvm_ffi.get_global_func("tvmbridge.tensorflow.alignment_copies")())


class Module:
    """A TVM-compiled library (``export_library`` output) whose functions TensorFlow calls."""

    def __init__(self, path: "str | os.PathLike"):
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.isfile(self.path):
            raise tf.errors.NotFoundError(None, None, f"tvmbridge: no TVM library at '{self.path}'")
        _op_library()

    def func(self, name: str, output_shape=None, output_dtype="float32") -> "Function":
        """The library's function ``name`` as a TensorFlow-callable.

        ``output_dtype``: a dtype, or a list of them for a function with several outputs.
        ``output_shape``: for each output a list of ints, a ``tf.TensorShape``, a shape
        tensor computed in the graph (``tf.shape(x)``), or a list mixing ints and scalar
        tensors (``[tf.shape(x)[0], 4]``, as TVMDSOOp's users wrote it); for several outputs,
        a list with one per output. It may be omitted for Relax VM functions, which allocate their
        outputs (then it is only checked when given); destination-passing functions (TIR,
        TE) need it, since TensorFlow allocates what they write into.
        """
        return Function(self.path, name, output_shape, output_dtype)

    def __repr__(self):
        return f"tvmbridge.tensorflow.Module({self.path!r})"


def _is_shape_tensor(value) -> bool:
    return isinstance(value, (tf.Tensor, tf.Variable)) or hasattr(value, "graph")


def _is_computed_shape(shape) -> bool:
    """A shape known only when the graph runs: a shape tensor, or a list holding a tensor."""
    return _is_shape_tensor(shape) or (
        isinstance(shape, (list, tuple)) and any(_is_shape_tensor(e) for e in shape))


def _as_shape_tensor(shape) -> tf.Tensor:
    if _is_shape_tensor(shape):
        return tf.cast(shape, tf.int64)
    for extent in shape:
        if _is_shape_tensor(extent) and extent.shape.rank != 0:
            raise ValueError(f"tvmbridge: an output shape given as a list takes ints and "
                             f"scalar tensors; got a tensor of shape {extent.shape}")
    return tf.stack([tf.cast(extent, tf.int64) for extent in shape])


class Function:
    """One function of a TVM library, called through TVMDSOOp; see :meth:`Module.func`."""

    def __init__(self, path: str, name: str, output_shape, output_dtype):
        if not isinstance(name, str) or not name:
            raise TypeError(f"tvmbridge: the function name must be a non-empty str, got {name!r}")
        self.path, self.name = path, name
        self.several = isinstance(output_dtype, (list, tuple))
        dtypes = list(output_dtype) if self.several else [output_dtype]
        if not dtypes:
            raise ValueError("tvmbridge: output_dtype lists no outputs")
        self.dtypes = [tf.as_dtype(d) for d in dtypes]
        shapes = self._shapes_per_output(output_shape, len(self.dtypes))
        self.shape_tensors = [s for s in shapes if s is not None and _is_computed_shape(s)]
        if self.shape_tensors and len(self.shape_tensors) != len(shapes):
            raise ValueError("tvmbridge: give every output shape as a list or every one as a "
                             "tensor, not a mix")
        self.static_shapes = [] if self.shape_tensors or shapes[0] is None else [
            tf.TensorShape(s) for s in shapes]

    @staticmethod
    def _shapes_per_output(output_shape, count: int) -> list:
        if output_shape is None:
            return [None] * count
        if count == 1:
            return [output_shape]
        if _is_shape_tensor(output_shape) or len(output_shape) != count:
            raise ValueError(f"tvmbridge: {count} outputs need a list of {count} output shapes, "
                             f"got {output_shape!r}")
        if any(s is None for s in output_shape):
            raise ValueError("tvmbridge: give a shape for every output, or none")
        return list(output_shape)

    def __call__(self, *args):
        shapes = [_as_shape_tensor(s) for s in self.shape_tensors]
        outputs = _op_library().tvmdso_op(
            args=[tf.convert_to_tensor(a) for a in args], output_shapes=shapes, Tout=self.dtypes,
            static_output_shapes=self.static_shapes, lib_path=self.path, func_name=self.name)
        return list(outputs) if self.several else outputs[0]

    def __repr__(self):
        return f"tvmbridge.tensorflow.Function({self.path!r}, {self.name!r})"
