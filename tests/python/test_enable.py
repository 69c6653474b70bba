"""tvmbridge.torch.enable(): TorchScript's executor hands supported subgraphs to TVM."""

import io
import json
import threading
import warnings

import pytest
import torch
import torchvision

import tvmbridge.torch as tt
from conftest import SmallNet, randomize_, run_python
from shared_models import BertEncoder

TOLERANCE = dict(rtol=1e-4, atol=1e-4)


@pytest.fixture
def enabled(tmp_path):
    """enable() for one test, with its own disk cache, disabled afterwards so that other
    tests' modules stay stock TorchScript."""
    tt.enable(cache_dir=tmp_path / "cache", never_slower=False)
    yield tmp_path / "cache"
    tt.disable()


def stats_delta(before: dict) -> dict:
    after = tt.enable_statistics()
    return {key: after[key] - before[key] for key in after}


def run_until_grouped(module, *inputs, calls=3):
    """TorchScript optimises a graph (and so runs the pass) after its profiling run(s)."""
    with torch.no_grad():
        for _ in range(calls):
            output = module(*inputs)
    return output


def has_groups(module, *inputs) -> bool:
    return "tvmbridge::CompilationGroup" in str(module.graph_for(*inputs))


@pytest.mark.parametrize("how", ["trace", "script_frozen", "loaded"])
def test_torchvision_models_match_pytorch(enabled, how):
    torch.manual_seed(0)
    model = randomize_(torchvision.models.resnet18(weights=None))
    x = torch.randn(1, 3, 224, 224)
    if how == "trace":
        module = torch.jit.trace(model, x)
    elif how == "script_frozen":
        module = torch.jit.freeze(torch.jit.script(model))
    else:
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.trace(model, x), buffer)
        buffer.seek(0)
        module = torch.jit.load(buffer)
    before = tt.enable_statistics()
    actual = run_until_grouped(module, x)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(actual, expected, **TOLERANCE)
        x2 = torch.randn(1, 3, 224, 224)
        torch.testing.assert_close(module(x2), model(x2), **TOLERANCE)
    delta = stats_delta(before)
    assert has_groups(module, x)
    assert delta["groups"] >= 1 and delta["compiles"] == delta["groups"]
    assert delta["fallbacks"] == 0


def test_mobilenet_v2_matches_pytorch(enabled):
    torch.manual_seed(0)
    model = randomize_(torchvision.models.mobilenet_v2(weights=None))
    x = torch.randn(1, 3, 224, 224)
    module = torch.jit.trace(model, x)
    actual = run_until_grouped(module, x)
    with torch.no_grad():
        torch.testing.assert_close(actual, model(x), **TOLERANCE)
    assert has_groups(module, x)


def test_shape_change_compiles_once_per_shape(enabled):
    torch.manual_seed(0)
    model = randomize_(SmallNet())
    x1, x2 = torch.randn(1, 3, 16, 16), torch.randn(4, 3, 20, 20)
    module = torch.jit.trace(model, x1)
    before = tt.enable_statistics()
    run_until_grouped(module, x1)
    groups = stats_delta(before)["groups"]
    assert groups >= 1
    with torch.no_grad():
        for x in (x2, x1, x2, x2, x1):
            torch.testing.assert_close(module(x), model(x), **TOLERANCE)
    delta = stats_delta(before)
    assert delta["compiles"] == 2 * groups  # one per group and shape, none again
    assert delta["groups"] == groups


@pytest.fixture
def dynamic(tmp_path):
    """enable(dynamic=True) for one test (see `enabled`)."""
    tt.enable(cache_dir=tmp_path / "cache", never_slower=False, dynamic=True)
    yield tmp_path / "cache"
    tt.disable()


def token_call(batch: int, length: int, seed: int):
    """Token ids and an attention mask with the last two positions of row 0 padded."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 1000, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.int64)
    mask[0, max(length - 2, 1):] = 0
    return ids, mask


def test_dynamic_groups_compile_once_over_ranges(dynamic):
    """A transformers BERT called at varying lengths compiles its first shape exactly, then
    one version over a range of lengths, widened only when a call falls outside it."""
    torch.manual_seed(0)
    model = BertEncoder(max_positions=64).eval()
    module = torch.jit.trace(model, token_call(1, 8, 0), strict=False)
    before = tt.enable_statistics()
    run_until_grouped(module, *token_call(1, 8, 0))
    groups = stats_delta(before)["groups"]
    assert groups >= 1
    # (batch, length, compiles so far, of which over ranges)
    calls = [(1, 5, 2, 1),   # length 2..8 (0 and 1 stay exact until seen)
             (1, 7, 2, 1), (1, 2, 2, 1), (1, 8, 2, 1),
             (1, 30, 3, 2),  # widened to 2..32
             (1, 17, 3, 2), (1, 32, 3, 2),
             (1, 1, 4, 3),   # 1..32
             (3, 12, 5, 4)]  # the batch becomes a symbol too
    with torch.no_grad():
        for seed, (batch, length, compiles, symbolic) in enumerate(calls):
            ids, mask = token_call(batch, length, seed)
            actual = module(ids, mask)
            expected = model(ids, mask)
            torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
            assert torch.equal(actual.isnan(), expected.isnan())
            delta = stats_delta(before)
            assert (delta["compiles"], delta["symbolic_compiles"]) == (
                groups * compiles, groups * symbolic), (batch, length, delta)
    assert delta["fallbacks"] == 0 and delta["groups"] == groups


class PositionTable(torch.nn.Module):
    """Token and position embeddings: lengths beyond the table's 6 rows are out of range."""

    def __init__(self):
        super().__init__()
        self.tokens = torch.nn.Embedding(50, 8)
        self.positions = torch.nn.Embedding(6, 8)

    def forward(self, ids):
        positions = torch.arange(ids.size(1)).unsqueeze(0)
        return torch.tanh(self.tokens(ids) + self.positions(positions)) * 2.0


def test_dynamic_range_ends_at_the_longest_input_where_the_model_refuses_more(dynamic):
    """A range to the next power of two (8) would take the position table past its rows, so
    the group compiles the range up to the longest length seen instead."""
    torch.manual_seed(0)
    model = PositionTable().eval()
    module = torch.jit.trace(model, torch.randint(0, 50, (1, 3)))
    before = tt.enable_statistics()
    run_until_grouped(module, torch.randint(0, 50, (1, 3)))
    with torch.no_grad():
        for length, symbolic in [(5, 1), (4, 1), (2, 1), (6, 2), (3, 2)]:
            ids = torch.randint(0, 50, (2, length))
            torch.testing.assert_close(module(ids), model(ids), rtol=1e-5, atol=1e-6)
            assert stats_delta(before)["symbolic_compiles"] == symbolic, length
        with pytest.raises(Exception, match="out of range"):
            module(torch.randint(0, 50, (1, 7)))  # as the model itself refuses


def test_dynamic_group_that_cannot_compile_over_ranges_compiles_per_shape(dynamic):
    """Padding needs static shapes in TVM: the group warns once and compiles each shape."""

    class Padded(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.pad(x, (1, 1)) * 2.0 + 1.0

    module = torch.jit.trace(Padded(), torch.randn(2, 6))
    before = tt.enable_statistics()
    run_until_grouped(module, torch.randn(2, 6))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            for length in (5, 7, 5, 9):
                x = torch.randn(2, length)
                torch.testing.assert_close(module(x), Padded()(x))
    messages = [str(w.message) for w in caught if "over a range of shapes" in str(w.message)]
    assert len(messages) == 1 and "aten::pad" in messages[0], messages
    delta = stats_delta(before)
    assert delta["symbolic_compiles"] == 0 and delta["fallbacks"] == 0
    assert delta["compiles"] == 1 + 1 + 3  # exact 6; the try over 2..8; exact 5, 7 and 9


def test_concurrent_first_calls_compile_once(enabled):
    torch.manual_seed(0)
    model = randomize_(SmallNet())
    x = torch.randn(2, 3, 16, 16)
    module = torch.jit.script(model)
    module = torch.jit.freeze(module)
    with torch.no_grad():
        expected = model(x)
        module(x)  # the profiling run: stock TorchScript, no group yet
    before = tt.enable_statistics()
    results, errors = [None] * 4, []
    start = threading.Barrier(len(results))

    def call(slot):
        try:
            start.wait()
            with torch.no_grad():
                results[slot] = module(x)
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for result in results:
        torch.testing.assert_close(result, expected, **TOLERANCE)
    delta = stats_delta(before)
    assert delta["groups"] >= 1
    assert delta["compiles"] == delta["groups"]  # four threads, one compilation per group


def test_disable_restores_stock_torchscript(tmp_path):
    torch.manual_seed(0)
    model = randomize_(SmallNet())
    x = torch.randn(2, 3, 16, 16)
    with tt.enabled(cache_dir=None, never_slower=False):
        assert tt.is_enabled()
        grouped = torch.jit.trace(model, x)
        run_until_grouped(grouped, x)
    assert not tt.is_enabled()
    before = tt.enable_statistics()
    stock = torch.jit.trace(model, x)
    with torch.no_grad():
        torch.testing.assert_close(run_until_grouped(stock, x), model(x), **TOLERANCE)
        torch.testing.assert_close(grouped(x), model(x), **TOLERANCE)  # already optimised
    assert stats_delta(before)["groups"] == 0
    assert not has_groups(stock, x)
    assert has_groups(grouped, x)


def test_scalar_inputs_are_compiled_in_and_checked(enabled):
    class Scaled(torch.nn.Module):
        def forward(self, x, scale: int):
            return torch.relu(x * scale + 1.0) - x

    module = torch.jit.script(Scaled())
    x = torch.randn(2, 8)
    before = tt.enable_statistics()
    with torch.no_grad():
        for scale in (2, 2, 2, 3, 2, 3):
            torch.testing.assert_close(module(x, scale), torch.relu(x * scale + 1.0) - x)
    delta = stats_delta(before)
    assert delta["groups"] == 1 and delta["compiles"] == 2  # one per value of `scale`


def test_weights_changed_in_place_are_seen(enabled):
    torch.manual_seed(0)
    model = randomize_(SmallNet())
    x = torch.randn(2, 3, 16, 16)
    module = torch.jit.trace(model, x)
    run_until_grouped(module, x)
    with torch.no_grad():
        model.fc.weight.mul_(2.0)  # the traced module shares these parameters
        torch.testing.assert_close(module(x), model(x), **TOLERANCE)


def test_partial_conversion_warns_and_matches(enabled):
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            y = torch.relu(x) * 2.0 + 1.0
            return torch.where(y > 1.5)[0].float() * 3.0

    module = torch.jit.script(DataDependent())
    x = torch.randn(64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        actual = run_until_grouped(module, x)
    torch.testing.assert_close(actual, DataDependent()(x))
    messages = [str(w.message) for w in caught if "tvmbridge" in str(w.message)]
    assert any("aten::where" in message for message in messages), messages


def test_require_full_compilation_makes_a_fallback_an_error(tmp_path):
    """torch_tvm's enable(strict=True): a group TVM cannot run whole raises instead of running
    in TorchScript; a group it can run is not affected."""
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            y = torch.relu(x) * 2.0 + 1.0
            return torch.where(y > 1.5)[0].float() * 3.0

    class Dense(torch.nn.Module):
        def forward(self, x):
            return torch.tanh(torch.relu(x) * 2.0 + 1.0) - 0.5

    x = torch.randn(64)
    with tt.enabled(cache_dir=tmp_path / "cache", never_slower=False,
                    require_full_compilation=True):
        with pytest.raises(RuntimeError, match=r"cannot run in TVM, and "
                                               r"enable\(require_full_compilation=True\)"
                                               r"(.|\n)*aten::where"):
            run_until_grouped(torch.jit.script(DataDependent()), x)
        dense = torch.jit.script(Dense())
        torch.testing.assert_close(run_until_grouped(dense, x), Dense()(x), **TOLERANCE)
        assert has_groups(dense, x)


def test_requires_grad_inputs_run_torchscript(enabled):
    torch.manual_seed(0)
    model = randomize_(SmallNet())
    module = torch.jit.freeze(torch.jit.script(model))
    x = torch.randn(2, 3, 16, 16)
    run_until_grouped(module, x)
    before = tt.enable_statistics()
    leaf = x.clone().requires_grad_()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        output = module(leaf)
    output.sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
    torch.testing.assert_close(output.detach(), model(x).detach(), **TOLERANCE)
    assert stats_delta(before)["grad_calls"] >= 1


COLD_WARM = """
import json, sys, time, torch
import tvmbridge.torch as tt
from shared_models import SmallNet
torch.manual_seed(0)
model = SmallNet().eval()
x = torch.randn(2, 3, 16, 16)
module = torch.jit.trace(model, x)
tt.enable(cache_dir=sys.argv[1], never_slower=False)
with torch.no_grad():
    started = time.perf_counter()
    for _ in range(3):  # profiling run, then the optimised graph: the group's first call
        output = module(x)
    first = time.perf_counter() - started
    error = (output - model(x)).abs().max().item()
print(json.dumps({"stats": tt.enable_statistics(), "first_call_s": first, "error": error}))
"""


def test_second_process_starts_from_disk_cache(tmp_path):
    from conftest import ROOT

    code = f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})\n" + COLD_WARM
    runs = []
    for _ in range(2):
        result = run_python(code, str(tmp_path / "cache"))
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert cold["stats"]["compiles"] >= 1 and cold["stats"]["disk_loads"] == 0
    assert warm["stats"]["compiles"] == 0
    assert warm["stats"]["disk_loads"] == cold["stats"]["compiles"]
    assert cold["error"] < 1e-4 and warm["error"] < 1e-4
    assert list((tmp_path / "cache").glob("*.pt"))
    assert not list((tmp_path / "cache").glob("*.tmp*"))  # no half-written files left
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700  # loaded as native code


def test_enable_rejects_bad_settings():
    with pytest.raises(TypeError, match="tuning must be a tvmbridge.Tuning"):
        tt.enable(tuning="fast")
    with pytest.raises(ValueError, match="min_block_size"):
        tt.enable(min_block_size=0)
    with pytest.raises(TypeError, match="dynamic must be True or False"):
        tt.enable(dynamic="auto")
    assert not tt.is_enabled()
