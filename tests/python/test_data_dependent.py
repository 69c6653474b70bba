"""Ops whose result shapes tensor values decide (nonzero, where(condition), masked_select,
boolean-mask indexing, unique) convert with from_torchscript and run whole on TVM's VM."""

import random

import numpy as np
import pytest
import torch
import tvm

import tvmbridge.torch as tt


class Nonzero(torch.nn.Module):
    def forward(self, x):
        return torch.nonzero(x > 0) * 2


class WhereCondition(torch.nn.Module):
    def forward(self, x):
        rows, cols = torch.where(x > 0)
        return rows * 10 + cols


class MaskedSelect(torch.nn.Module):
    def forward(self, x, mask):
        return torch.masked_select(x, mask) * 2.0


class MaskIndex(torch.nn.Module):
    def forward(self, x):
        return x[x > 0] + 1.0


class MaskIndexAfterDim(torch.nn.Module):
    def forward(self, x, mask):
        return x[:, mask] - 1.0


class Unique(torch.nn.Module):
    def forward(self, x):
        values, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
        return values, inverse, counts


class UniqueValues(torch.nn.Module):
    def forward(self, x):
        return torch.unique(x) * 2


def run_on_vm(module: torch.nn.Module, *inputs: torch.Tensor):
    """from_torchscript -> tvm.compile -> Relax VM, with no PyTorch in between."""
    mod, _ = tt.from_torchscript(torch.jit.script(module),
                                 [tt.Input(tuple(x.shape), dtype=x.dtype) for x in inputs])
    vm = tvm.relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(x.numpy()) for x in inputs])
    results = [result] if hasattr(result, "numpy") else list(result)
    return [torch.from_numpy(r.numpy()) for r in results]


def assert_same(actual: list, module: torch.nn.Module, *inputs: torch.Tensor):
    """Shapes, dtypes, values and NaN masks as PyTorch's."""
    expected = module(*inputs)
    expected = list(expected) if isinstance(expected, tuple) else [expected]
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape, (a, e)
        if e.is_floating_point():
            assert torch.equal(a.isnan(), e.isnan()), (a, e)
        torch.testing.assert_close(a, e, rtol=0, atol=0, equal_nan=True)


def values(rng: random.Random, shape: tuple, dtype=torch.float32) -> torch.Tensor:
    """Random values on a small grid (repeats, for unique), with NaN, infinities and signed
    zeros mixed in; sometimes all positive or all negative (masks all true or all false)."""
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    x = torch.randint(-3, 4, shape, generator=generator).to(dtype)
    kind = rng.choice(["mixed", "mixed", "specials", "none positive", "all positive"])
    if kind == "none positive":
        x = -x.abs()
    elif kind == "all positive":
        x = x.abs() + 1
    elif kind == "specials" and dtype.is_floating_point and x.numel():
        flat = x.view(-1)
        for special in (float("nan"), float("nan"), float("inf"), -float("inf"), -0.0):
            flat[rng.randrange(flat.numel())] = special
    return x


def generated_cases(count: int = 6):
    """(name, module, inputs) for each op, `count` seeded draws of shapes and values."""
    rng = random.Random(22)
    for seed in range(count):
        rows, cols = rng.randrange(1, 5), rng.randrange(1, 6)
        x = values(rng, (rows, cols))
        mask = values(rng, (cols,)) > 0
        yield f"nonzero-{seed}", Nonzero(), (x,)
        yield f"where-{seed}", WhereCondition(), (x,)
        yield f"masked_select-{seed}", MaskedSelect(), (x, mask)  # mask broadcast over rows
        yield f"mask_index-{seed}", MaskIndex(), (x,)
        yield f"mask_index_after_dim-{seed}", MaskIndexAfterDim(), (x, mask)
        yield f"unique_float-{seed}", Unique(), (x,)
        yield f"unique_int-{seed}", Unique(), (values(rng, (rows, cols), torch.int64),)


@pytest.mark.parametrize("name,module,inputs",
                         [pytest.param(*case, id=case[0]) for case in generated_cases()])
def test_data_dependent_ops_run_whole_on_the_vm(name, module, inputs):
    assert_same(run_on_vm(module, *inputs), module, *inputs)


def test_unique_keeps_every_nan_apart_as_pytorch_does():
    x = torch.tensor([[1.0, float("nan"), 1.0], [float("nan"), 3.0, -2.0]])
    actual = run_on_vm(Unique(), x)
    assert actual[0].isnan().sum() == 2  # TVM's own unique would merge them into one
    assert_same(actual, Unique(), x)
    all_nan = torch.full((3,), float("nan"))
    assert_same(run_on_vm(Unique(), all_nan), Unique(), all_nan)


def test_data_dependent_extents_are_named_symbols_in_relax():
    mod, _ = tt.from_torchscript(torch.jit.script(MaskIndex()), [tt.Input((4, 5))])
    text = mod.script(show_meta=False)
    assert "R.nonzero" in text and "match_cast" in text
    assert "nonzero_0" in text  # the true count, a symbol in [0, 20]


def test_mask_of_the_wrong_shape_is_refused_with_both_shapes():
    with pytest.raises(Exception, match=r"shape of the mask \[4\] at index 0 does not match .*\[3, 5\]"):
        tt.from_torchscript(torch.jit.script(MaskIndexAfterDim()),
                            [tt.Input((3, 5)), tt.Input((4,), dtype=torch.bool)])


def test_compile_keeps_data_dependent_ops_in_pytorch(tmp_path):
    """TVM computes these ops through Python callbacks, which a compiled module served from
    C++ does not have: compile runs them in PyTorch, with the reason in the report."""
    for module, kind in ((Nonzero(), "aten::nonzero"), (MaskIndex(), "aten::index")):
        compiled = tt.compile(torch.jit.script(module), [tt.Input((4, 5))], min_block_size=1,
                              never_slower=False)
        placement = {node["kind"]: node for node in tt.report(compiled).nodes}
        assert placement[kind]["region"] < 0
        if kind == "aten::nonzero":
            assert "depends on tensor values" in placement[kind]["reason"]
        for x in (torch.randn(4, 5), -torch.ones(4, 5), torch.ones(4, 5)):
            torch.testing.assert_close(compiled(x), module(x))
