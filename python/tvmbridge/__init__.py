"""tvmbridge: compile PyTorch (TorchScript) models with Apache TVM and run them back in PyTorch.

``import tvmbridge`` loads the runtime library, which registers the TorchScript class
``torch.classes.tvmbridge.TVMModule`` and the op ``torch.ops.tvmbridge.run``; after that,
``torch.jit.load`` reads modules compiled by tvmbridge. The compiler lives in
:mod:`tvmbridge.torch`.
"""

from ._native import load_runtime as _load_runtime
from ._version import __version__
from .errors import UnsupportedOperatorError

_load_runtime()

__all__ = ["UnsupportedOperatorError", "__version__"]
