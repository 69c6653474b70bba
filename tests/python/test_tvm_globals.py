"""Every TVM global the C++ frontend calls exists in the pinned wheel, so a TVM upgrade that
renames one fails here, by name, rather than deep inside a conversion."""

import tvm_ffi

from tvmbridge import _native


def test_required_tvm_globals_exist():
    required = [str(n) for n in _native.global_func("tvmbridge.frontend.required_tvm_globals")()]
    assert len(required) > 40
    available = set(tvm_ffi.registry.list_global_func_names())
    missing = sorted(set(required) - available)
    assert missing == []


def test_issue_op_floor_is_registered():
    supported = {str(n) for n in _native.global_func("tvmbridge.frontend.supported_ops")()}
    floor = {
        "aten::conv2d", "aten::_convolution", "aten::batch_norm", "aten::relu", "aten::relu_",
        "aten::relu6", "aten::hardtanh", "aten::hardtanh_", "aten::add", "aten::add_",
        "aten::mul", "aten::max_pool2d", "aten::avg_pool2d", "aten::adaptive_avg_pool2d",
        "aten::flatten", "aten::view", "aten::reshape", "aten::linear", "aten::addmm",
        "aten::matmul", "aten::dropout", "aten::cat", "aten::softmax", "aten::mean",
    }
    assert sorted(floor - supported) == []


def test_old_frontend_ops_are_converted_or_documented():
    """Every op of TVM's deleted frontend converts, or is listed with its reason in
    docs/coverage/left-to-pytorch.txt (and nothing listed there converts)."""
    from conftest import ROOT

    def ops(path):
        lines = (ROOT / "docs" / "coverage" / path).read_text().splitlines()
        return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}

    supported = {str(n) for n in _native.global_func("tvmbridge.frontend.supported_ops")()}
    missing = ops("old-tvm-frontend-ops.txt") - supported
    assert sorted(missing) == sorted(ops("left-to-pytorch.txt"))
