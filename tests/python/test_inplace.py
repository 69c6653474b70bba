"""Elementwise kernels writing over an input nothing reads afterwards (tvmbridge.inplace): which
calls become in place, and that results do not change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tvmbridge.torch as tt


def _module():
    """x -> a = x + x -> b = clip(a) -> c = flip(b) -> d = exp(c) -> e = c + d, each a call_tir
    of a TE kernel, e returned."""
    import tvm
    from tvm import relax, topi

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((8, 16), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit_te(topi.add, x, x)
            b = bb.emit_te(lambda t: topi.clip(t, 0.0, 6.0), a)
            c = bb.emit_te(lambda t: topi.flip(t, axis=0), b)
            d = bb.emit_te(topi.exp, c)
            e = bb.emit_output(bb.emit_te(topi.add, c, d))
        bb.emit_func_output(e)
    return bb.get(), tvm


def _kinds(mod) -> list[str]:
    """Per call bound in main's dataflow block: "inplace <indices>" or "out of place"."""
    from tvm import relax

    kinds = []
    for binding in mod["main"].body.blocks[0].bindings:
        call = binding.value
        if not isinstance(call, relax.Call):
            continue
        if call.op.name == "relax.call_tir_inplace":
            kinds.append(f"inplace {list(map(int, call.attrs.inplace_indices))}")
        else:
            kinds.append("out of place")
    return kinds


def test_calls_write_over_inputs_only_where_that_is_safe():
    """x is the caller's (a stays out of place); b writes over a (used once, made by a call);
    c reads b at another element than it writes (a flip), so it stays out of place; d reads c,
    which e reads again, so it stays out of place; e writes over d, its second input. The
    results are the same either way."""
    from tvm import relax

    from tvmbridge import inplace

    mod, tvm = _module()
    rewritten = inplace.in_place_elementwise()(mod)
    assert _kinds(rewritten) == ["out of place", "inplace [0]", "out of place", "out of place",
                                 "inplace [1]"]
    x = np.random.default_rng(0).standard_normal((8, 16)).astype("float32")
    special = x.copy()
    special[1, 2], special[3, 4], special[5, 6] = np.nan, np.inf, -np.inf
    mains = [relax.VirtualMachine(tvm.compile(module, target="llvm"), tvm.cpu())["main"]
             for module in (mod, rewritten)]
    for values in (x, special):
        before, after = (main(tvm.runtime.tensor(values)).numpy() for main in mains)
        assert np.array_equal(before.view("int32"), after.view("int32"))
    after = mains[1](tvm.runtime.tensor(x)).numpy()
    expected = np.flip(np.clip(x + x, 0, 6), axis=0)
    np.testing.assert_allclose(after, expected + np.exp(expected), rtol=1e-6)


def test_models_give_the_same_bits_with_and_without_in_place_kernels(monkeypatch):
    """A convolution network built both ways: the same outputs, bit for bit, NaN and infinity
    included, and the build made some of its kernels in place (the ReLU6 after the fourth
    convolution, which oneDNN's kernel does not clamp: its input is as large as its result,
    and not another clamping kernel's)."""
    from tvmbridge import inplace, pipeline

    monkeypatch.setattr(pipeline, "convolution_kernel_choices",
                        lambda precision, mod, tuning=False: (
                            pipeline.uses_onednn_convolutions(precision, mod, tuning),))
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU6(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16), torch.nn.BatchNorm2d(16),
        torch.nn.ReLU6(), torch.nn.Conv2d(16, 8, 1), torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU6(), torch.nn.Conv2d(8, 8, 1)).eval()
    x = torch.randn(2, 3, 16, 16)
    x[0, 1, 4, 4], x[1, 0, 7, 9] = float("nan"), float("inf")
    traced = torch.jit.trace(model, x)
    made = []
    candidates = inplace._candidates

    def counting(mod, func):
        found = list(candidates(mod, func))
        made.extend(found)
        return iter(found)

    monkeypatch.setattr(inplace, "_candidates", counting)
    with_in_place = tt.compile(traced, [x], never_slower=False)
    assert made, "no kernel was made in place"
    monkeypatch.setattr(inplace, "_candidates", lambda mod, func: iter(()))
    without = tt.compile(traced, [x], never_slower=False)
    with torch.no_grad():
        expected, actual = without(x), with_in_place(x)
        assert torch.equal(actual.view(torch.int32), expected.view(torch.int32))
        torch.testing.assert_close(torch.isnan(actual), torch.isnan(model(x)))


@pytest.mark.parametrize("shape_changes", [False, True])
def test_a_kernel_whose_result_differs_in_shape_or_type_is_left(shape_changes):
    """An input of another shape (a broadcast) or dtype (a cast) than the result is not written
    over."""
    from tvm import relax, topi

    from tvmbridge import inplace

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((8, 16), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit_te(topi.add, x, x)
            if shape_changes:
                b = bb.emit_te(lambda t: topi.broadcast_to(t, (2, 8, 16)), a)
            else:
                b = bb.emit_te(lambda t: topi.cast(t, "float16"), a)
            out = bb.emit_output(b)
        bb.emit_func_output(out)
    assert _kinds(inplace.in_place_elementwise()(bb.get())) == ["out of place"] * 2
