"""Ops whose result shapes tensor values decide (nonzero, where(condition), masked_select,
boolean-mask indexing, unique, bincount, torchvision's nms) convert with from_torchscript and
run whole on TVM's VM."""

import pytest
import torch

import tvmbridge.torch as tt
from differential import (Bincount, MaskIndex, MaskIndexAfterDim, Nms, Nonzero, Unique,
                          WeightedBincount, run_on_vm)

# Generated cases of these ops, shrunk when they fail, are differential.py's data_dependent
# family (tests/python/test_differential.py).


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


class FlattenEmpty(torch.nn.Module):
    def forward(self, x):
        return torch.flatten(x) + 1.0, x.reshape(0, 5) * 2.0


def test_tensors_without_elements_reshape_to_their_own_empty_shapes():
    """TVM's reshape reads a 0 in the new shape as 'the input's extent there' ([3, 0] flattened
    became [3]); converters' reshapes to shapes without elements keep PyTorch's shapes."""
    x = torch.empty(3, 0)
    assert_same(run_on_vm(FlattenEmpty(), x), FlattenEmpty(), x)
    assert_same(run_on_vm(Unique(), x), Unique(), x)


def test_bincount_counts_and_sums_weights_to_a_length_the_values_decide():
    for x in (torch.tensor([[0, 1, 1], [5, 0, 1]]), torch.tensor([[2]])):
        assert_same(run_on_vm(Bincount(), x), Bincount(), x)  # 6 bins, then minlength's 3
        assert_same(run_on_vm(WeightedBincount(), x), WeightedBincount(), x)


class CountValues(torch.nn.Module):
    def forward(self, x):
        return torch.bincount(x)


def test_bincount_of_a_negative_value_raises_an_error_naming_it():
    """A negative value would be a write before the counts' buffer."""
    with pytest.raises(RuntimeError, match="bincount only supports 1-d non-negative"):
        CountValues()(torch.tensor([0, -3, 2]))  # PyTorch's own
    with pytest.raises(Exception, match=r"aten::bincount: got the negative value -3; bincount "
                                        r"expects non-negative integers"):
        run_on_vm(CountValues(), torch.tensor([0, -3, 2]))


def test_nms_keeps_torchvision_order_for_equal_and_nan_scores():
    """TVM's kernel drops scores at or below 0 and sorts its own way; torchvision keeps them
    and sorts stably with NaN first. Touching boxes (IoU 0) survive a threshold of 0."""
    boxes = torch.tensor([[0.0, 0, 2, 2], [0, 0, 2, 2], [2, 0, 4, 2], [0, 0, 2, 1],
                          [5, 5, 6, 6], [5, 5, 6, 6]])
    scores = torch.tensor([-1.0, -1.0, 0.0, float("nan"), 3.0, float("nan")])
    for threshold in (0.0, 0.5):
        kept = run_on_vm(Nms(threshold), boxes, scores)
        assert_same(kept, Nms(threshold), boxes, scores)
    assert run_on_vm(Nms(0.5), boxes, scores)[0].tolist() == [3, 5, 2, 0]


def test_nms_with_a_negative_threshold_is_refused():
    with pytest.raises(Exception, match="iou_threshold -0.5 is negative"):
        run_on_vm(Nms(-0.5), torch.zeros(2, 4), torch.zeros(2))
