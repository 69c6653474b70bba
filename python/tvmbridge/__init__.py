"""tvmbridge: compile PyTorch (TorchScript) models with Apache TVM and run them back in PyTorch.

``import tvmbridge`` loads the runtime library, which registers the TorchScript class
``torch.classes.tvmbridge.TVMModule`` and the op ``torch.ops.tvmbridge.run``; after that,
``torch.jit.load`` reads modules compiled by tvmbridge. The compiler lives in
:mod:`tvmbridge.torch`.
"""

import os as _os

# TVM sizes its thread pool when it first runs parallel code; left alone it took one thread
# on this 2-core machine (ResNet-18: 21 ms with one, 10.8 ms with both). Every core, as
# PyTorch uses, unless the user chose.
_os.environ.setdefault("TVM_NUM_THREADS", str(_os.cpu_count() or 1))

from ._native import load_runtime as _load_runtime  # noqa: E402
from ._version import __version__  # noqa: E402
from .errors import UnsupportedOperatorError  # noqa: E402

_load_runtime()

__all__ = ["UnsupportedOperatorError", "__version__"]
