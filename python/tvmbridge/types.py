"""What a model's inputs are, shared by every path (TorchScript, export, the CLI): the dtypes
tvmbridge takes, by their names in TVM, and :class:`Input`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The dtypes model inputs may have, and their TVM names.
DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.int16: "int16",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.bool: "bool",
}


@dataclass(frozen=True)
class Input:
    """The shape and dtype of one model input (Torch-TensorRT users know this one).

    A fixed shape: ``Input((1, 3, 224, 224))``. A range of shapes, compiled into one program:
    ``Input(min_shape=(1, 1), opt_shape=(1, 128), max_shape=(8, 512), dtype=torch.int64)``;
    each dim where min and max differ is symbolic, ``min <= extent <= max`` at every call, and
    compile measures and tunes at ``opt_shape``. Dims at the same position with the same range
    are one symbol across inputs (token ids and their mask have one length); ``dim_names``
    names them (``("batch", "seq")``, None for a fixed dim) to say otherwise.

    ``value_range=(low, high)``: the values the model accepts there, ``low <= v < high`` (token
    ids: ``(0, vocabulary_size)``). Compiling runs the model on examples of each input: the
    tensor itself where one is given instead of an ``Input``, else random values in this range.
    Without one: normal floats, and integers in [0, rows) where the model indexes a table of
    that many rows with the input (an embedding's), else in [0, 10)."""

    shape: tuple[int, ...] | None = None
    dtype: torch.dtype = torch.float32
    name: str | None = None
    value_range: tuple | None = None
    min_shape: tuple[int, ...] | None = None
    opt_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None
    dim_names: tuple | None = None

    def __post_init__(self):
        ranged = (self.min_shape, self.opt_shape, self.max_shape)
        if any(r is not None for r in ranged):
            self._check_ranges()
        elif self.shape is None:
            raise ValueError("tvmbridge.Input: give a shape, or min_shape, opt_shape and max_shape")
        elif self.dim_names is not None:
            raise ValueError("tvmbridge.Input: dim_names name the dims of a range of shapes "
                             "(min_shape, opt_shape, max_shape)")
        shape = tuple(self.shape)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ValueError(f"tvmbridge.Input: shape must be non-negative ints, got {self.shape!r}")
        if self.dtype not in DTYPE_NAMES:
            supported = ", ".join(str(d) for d in DTYPE_NAMES)
            raise TypeError(f"tvmbridge.Input: dtype {self.dtype} is not supported ({supported})")
        if self.value_range is not None:
            low, high = self.value_range
            if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
                raise ValueError(f"tvmbridge.Input: value_range must be (low, high) numbers with "
                                 f"low < high, got {self.value_range!r}")
            if not self.dtype.is_floating_point and (low != int(low) or high != int(high)):
                raise ValueError(f"tvmbridge.Input: value_range of a {self.dtype} input must be "
                                 f"integers, got {self.value_range!r}")
        object.__setattr__(self, "shape", shape)

    def _check_ranges(self):
        if any(r is None for r in (self.min_shape, self.opt_shape, self.max_shape)):
            raise ValueError("tvmbridge.Input: a range of shapes needs all of min_shape, "
                             "opt_shape and max_shape")
        low, opt, high = (tuple(r) for r in (self.min_shape, self.opt_shape, self.max_shape))
        for label, r in (("min_shape", low), ("opt_shape", opt), ("max_shape", high)):
            if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in r):
                raise ValueError(f"tvmbridge.Input: {label} must be non-negative ints, got {r!r}")
        if not len(low) == len(opt) == len(high):
            raise ValueError(f"tvmbridge.Input: min_shape {low}, opt_shape {opt} and max_shape "
                             f"{high} differ in rank")
        if not all(a <= b <= c for a, b, c in zip(low, opt, high)):
            raise ValueError(f"tvmbridge.Input: expected min_shape <= opt_shape <= max_shape in "
                             f"every dim, got {low}, {opt}, {high}")
        if self.shape is not None and tuple(self.shape) != opt:
            raise ValueError(f"tvmbridge.Input: shape {tuple(self.shape)} is not opt_shape {opt}")
        if self.value_range is not None:
            raise ValueError("tvmbridge.Input: value_range with a range of shapes is not "
                             "supported yet (integer examples come from the model's tables)")
        if self.dim_names is not None:
            names = tuple(self.dim_names)
            if len(names) != len(opt) or not all(n is None or (isinstance(n, str) and
                                                                n.isidentifier()) for n in names):
                raise ValueError(f"tvmbridge.Input: dim_names must hold one identifier (or None) "
                                 f"per dim, got {self.dim_names!r}")
            for n, a, c in zip(names, low, high):
                if n is not None and a == c:
                    raise ValueError(f"tvmbridge.Input: dim_names names '{n}' a fixed dim "
                                     f"(min = max = {a})")
            object.__setattr__(self, "dim_names", names)
        for label, r in (("min_shape", low), ("opt_shape", opt), ("max_shape", high)):
            object.__setattr__(self, label, r)
        object.__setattr__(self, "shape", opt)

    @property
    def is_dynamic(self) -> bool:
        """Whether some dim takes a range of extents."""
        return self.min_shape is not None and self.min_shape != self.max_shape

    def example(self) -> torch.Tensor:
        """A random tensor of this shape and dtype, in ``value_range`` when given."""
        if self.dtype.is_floating_point:
            if self.value_range is None:
                return torch.randn(self.shape).to(self.dtype)
            low, high = self.value_range
            return (torch.rand(self.shape, dtype=torch.float64) * (high - low) + low).to(self.dtype)
        if self.dtype == torch.bool:
            return torch.randint(0, 2, self.shape).bool()
        low, high = self.value_range if self.value_range is not None else (0, 10)
        return torch.randint(int(low), int(high), self.shape, dtype=self.dtype)
