"""One compiled program for a range of shapes on the TorchScript path: tt.Input(min_shape,
opt_shape, max_shape) makes the dims that vary symbolic in Relax (issue 22)."""

import pytest
import torch
import tvm
from torch import nn

import tvmbridge.torch as tt
from conftest import randomize_
from shared_models import BertEncoder, TransformersEncoder

TOLERANCE = dict(rtol=1e-4, atol=1e-5)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class TinyEncoder(nn.Module):
    """Token ids and a mask of one length; heads split with view() of computed sizes, as
    traced transformers do."""

    def __init__(self, vocabulary=50, width=16, heads=2):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocabulary, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, ids, mask):
        x = self.embed(ids)
        batch, length, width = x.size(0), x.size(1), x.size(2)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        split = lambda t: t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)
        scores = split(q) @ split(k).transpose(-1, -2) / (width // self.heads) ** 0.5
        scores = scores + (1.0 - mask[:, None, None, :].to(scores.dtype)) * -1e4
        mixed = (scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(batch, length, width)
        return self.norm(x + self.out(mixed))


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = randomize_(SmallCNN().eval())
    return model, torch.jit.trace(model, torch.randn(2, 3, 16, 16))


BATCH = tt.Input(min_shape=(1, 3, 16, 16), opt_shape=(2, 3, 16, 16), max_shape=(8, 3, 16, 16))


def test_from_torchscript_gives_symbolic_relax_that_runs_at_every_batch(cnn):
    model, traced = cnn
    mod, params = tt.from_torchscript(traced, [BATCH], keep_params_as_input=False)
    assert not params
    assert "d0" in mod["main"].script()  # the batch is a variable, not a number
    vm = tvm.relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    for batch in (1, 3, 8):
        x = torch.randn(batch, 3, 16, 16)
        got = torch.from_numpy(vm["main"](tvm.runtime.tensor(x.numpy())).numpy())
        torch.testing.assert_close(got, model(x).detach(), **TOLERANCE)


@pytest.fixture(scope="module")
def compiled_cnn(cnn):
    return tt.compile(cnn[1], inputs=[BATCH], never_slower=False)


def test_one_compiled_module_serves_every_batch_in_range(cnn, compiled_cnn):
    model, _ = cnn
    report = tt.report(compiled_cnn)
    assert len(report.regions) == 1 and not report.torch_nodes
    with torch.no_grad():
        for batch in (1, 2, 5, 8):
            x = torch.randn(batch, 3, 16, 16)
            x[0, 0, 0, 0] = float("nan")  # NaN stays NaN through the symbolic program
            got, want = compiled_cnn(x), model(x)
            assert torch.equal(got.isnan(), want.isnan())
            torch.testing.assert_close(got, want, equal_nan=True, **TOLERANCE)


def test_batch_outside_the_range_is_refused_and_the_module_keeps_working(compiled_cnn):
    # Errors of ops inside a TorchScript forward reach Python as RuntimeError.
    with pytest.raises(RuntimeError, match=r"has 9 in dim 0; this module was compiled for 1\.\.8 "
                                           r"there \(x: float32\[1\.\.8, 3, 16, 16\]\)"):
        compiled_cnn(torch.randn(9, 3, 16, 16))
    with pytest.raises(RuntimeError, match="has shape"):
        compiled_cnn(torch.randn(2, 3, 17, 16))  # a fixed dim stays fixed
    assert compiled_cnn(torch.randn(4, 3, 16, 16)).shape == (4, 5)


def test_saved_module_keeps_its_ranges(cnn, compiled_cnn, tmp_path):
    path = tmp_path / "cnn_dynamic.pt"
    torch.jit.save(compiled_cnn, str(path))
    loaded = torch.jit.load(str(path))
    x = torch.randn(6, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), cnn[0](x), **TOLERANCE)
    with pytest.raises(RuntimeError, match=r"compiled for 1\.\.8"):
        loaded(torch.randn(0, 3, 16, 16))


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    model = randomize_(TinyEncoder().eval())
    ids = torch.randint(0, 50, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    traced = torch.jit.trace(model, (ids, mask))
    tokens = dict(min_shape=(1, 1), opt_shape=(1, 8), max_shape=(4, 32), dtype=torch.int64)
    compiled = tt.compile(traced, inputs=[tt.Input(**tokens), tt.Input(**tokens)],
                          never_slower=False)
    return model, compiled


def test_token_model_compiles_once_for_every_length(encoder):
    model, compiled = encoder
    report = tt.report(compiled)
    assert len(report.regions) == 1 and not report.torch_nodes
    with torch.no_grad():
        for batch, length in ((1, 1), (1, 8), (3, 5), (4, 32), (2, 17)):
            ids = torch.randint(0, 50, (batch, length))
            mask = torch.ones(batch, length, dtype=torch.int64)
            mask[:, length // 2 + 1:] = 0
            torch.testing.assert_close(compiled(ids, mask), model(ids, mask), **TOLERANCE)


def test_inputs_of_one_symbol_must_agree(encoder):
    _, compiled = encoder
    ids = torch.randint(0, 50, (2, 6))
    with pytest.raises(RuntimeError, match="has 5 in dim 1 where input 0 has 6"):
        compiled(ids, torch.ones(2, 5, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="out of range"):  # ids still checked against the table
        compiled(torch.full((2, 6), 50), torch.ones(2, 6, dtype=torch.int64))


@pytest.fixture(scope="module")
def bert():
    """transformers' BERT traced at one length: positions sliced to the length, the mask
    built with arange and advanced indexing, heads split with view(-1) of computed sizes."""
    torch.manual_seed(0)
    model = BertEncoder(max_positions=64).eval()
    ids = torch.randint(0, 1000, (1, 16))
    with torch.no_grad():
        traced = torch.jit.trace(model, (ids, torch.ones_like(ids)))
    tokens = dict(min_shape=(1, 1), opt_shape=(1, 16), max_shape=(4, 64), dtype=torch.int64)
    return model, traced, [tt.Input(**tokens), tt.Input(**tokens)]


def padded_batch(batch, length):
    ids = torch.randint(0, 1000, (batch, length))
    mask = torch.ones(batch, length, dtype=torch.int64)
    mask[0, length // 2 + 1:] = 0
    return ids, mask


def test_transformers_bert_compiles_whole_for_every_length(bert):
    model, traced, tokens = bert
    compiled = tt.compile(traced, tokens, require_full_compilation=True, never_slower=False)
    assert len(tt.report(compiled).regions) == 1
    with torch.no_grad():
        for batch, length in ((1, 1), (1, 16), (3, 5), (2, 33), (4, 64)):
            ids, mask = padded_batch(batch, length)
            torch.testing.assert_close(compiled(ids, mask), model(ids, mask), **TOLERANCE)
    with pytest.raises(RuntimeError, match=r"has 65 in dim 1; this module was compiled for "
                                           r"1\.\.64"):
        compiled(*padded_batch(1, 65))


@pytest.mark.parametrize("kind", ["distilbert", "roberta"])
def test_transformers_encoders_compile_whole_for_every_length(kind):
    """DistilBERT (its own mask and position code) and RoBERTa (positions counted from the
    ids that are not padding) stay one region over batch 1..4 x length 1..64 too."""
    torch.manual_seed(0)
    model = TransformersEncoder(kind, max_positions=64).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, padded_batch(1, 16), strict=False)
    tokens = tt.Input(min_shape=(1, 1), opt_shape=(1, 16), max_shape=(4, 64), dtype=torch.int64)
    compiled = tt.compile(traced, [tokens, tokens], require_full_compilation=True,
                          never_slower=False)
    assert len(tt.report(compiled).regions) == 1
    with torch.no_grad():
        for batch, length in ((1, 1), (3, 5), (2, 40), (4, 64)):
            ids, mask = padded_batch(batch, length)
            expected = model(ids, mask)
            actual = compiled(ids, mask)
            assert torch.equal(actual.isnan(), expected.isnan())
            torch.testing.assert_close(actual, expected, **TOLERANCE)


def test_transformers_bert_from_torchscript_runs_on_the_relax_vm(bert):
    model, traced, tokens = bert
    mod, _ = tt.from_torchscript(traced, tokens, keep_params_as_input=False)
    assert "R.arange(0, d1" in mod["main"].script()  # positions count to the length symbol
    vm = tvm.relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    for batch, length in ((1, 7), (3, 64)):
        ids, mask = padded_batch(batch, length)
        got = vm["main"](tvm.runtime.tensor(ids.numpy()), tvm.runtime.tensor(mask.numpy()))
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got.numpy()), model(ids, mask),
                                       **TOLERANCE)


class Lookup(nn.Module):
    def forward(self, table, rows):
        return table[rows] * 2


def test_indices_are_checked_against_the_extent_of_this_call():
    # The table's row count is a symbol: the check compares with the extent the call has.
    traced = torch.jit.trace(Lookup(), (torch.randn(12, 3), torch.tensor([0, 3])))
    table = tt.Input(min_shape=(10, 3), opt_shape=(12, 3), max_shape=(16, 3))
    compiled = tt.compile(traced, [table, tt.Input((2,), dtype=torch.int64)],
                          require_full_compilation=True, never_slower=False)
    x = torch.randn(11, 3)
    torch.testing.assert_close(compiled(x, torch.tensor([10, -11])), x[[10, -11]] * 2)
    for rows in ([0, 11], [-12, 0]):
        with pytest.raises(RuntimeError, match=rf"index {rows[0] or rows[1]} is out of range "
                                               r"for dimension 0 with size 11 \(expected -11 <= "
                                               r"index < 11\)"):
            compiled(x, torch.tensor(rows))
    torch.testing.assert_close(compiled(x, torch.tensor([1, 2])), x[[1, 2]] * 2)


def test_schedules_judge_threads_at_the_opt_extents():
    """The Relax function carries opt_shape's extents; the default schedules decide threading
    there: the passes of a layer norm over [batch, seq, 768] at opt seq 128 are
    worth two threads, at 1 not."""
    from tvmbridge import build, pipeline, schedule

    traced = torch.jit.trace(nn.LayerNorm(768).eval(), torch.randn(1, 128, 768))
    rows = tt.Input(min_shape=(1, 1, 768), opt_shape=(1, 128, 768), max_shape=(8, 512, 768))
    mod, _ = tt.from_torchscript(traced, [rows], keep_params_as_input=False)
    opt_extents = schedule.opt_extents_of(mod)
    assert opt_extents == {"d0": 1, "d1": 128}

    def threaded(extents):
        fused = pipeline.fuse(mod, build.host_target())  # each schedule on its own copy
        with build.host_target():
            return schedule.default_cpu_schedule(extents)(fused).script().count("T.parallel")

    assert threaded(opt_extents) == 3 and threaded({}) == 0  # mean, variance, normalised


@pytest.mark.parametrize("arguments, message", [
    (dict(min_shape=(1, 3), max_shape=(4, 3)), "needs all of min_shape, opt_shape and max_shape"),
    (dict(min_shape=(2, 3), opt_shape=(1, 3), max_shape=(4, 3)), "min_shape <= opt_shape"),
    (dict(min_shape=(1,), opt_shape=(1, 3), max_shape=(4, 3)), "differ in rank"),
    (dict(shape=(2, 3), min_shape=(1, 3), opt_shape=(1, 3), max_shape=(4, 3)), "is not opt_shape"),
    (dict(min_shape=(1, 3), opt_shape=(1, 3), max_shape=(4, 3), dim_names=("n", "c")),
     "names 'c' a fixed dim"),
    (dict(), "give a shape"),
])
def test_bad_ranges_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        tt.Input(**arguments)


class Heads(nn.Module):
    """A transformer's split into heads after a bias add, and the merge back."""

    def forward(self, x):
        split = (x + 1.0).view(x.size(0), x.size(1), 2, 8).transpose(1, 2)
        return (split * 2.0).transpose(1, 2).reshape(x.size(0), x.size(1), 16)


def test_reshapes_over_ranged_dims_fuse_as_static_ones_do():
    """A reshape that keeps the ranged leading dims is legalised as a map of the static
    trailing dims (tvmbridge.reshapes): it fuses with the ops around it, as in a static compile.
    TOPI's unravelled the symbolic dims too, and FuseOps kept each such reshape apart."""
    from tvmbridge import build, pipeline

    x = torch.randn(2, 5, 16)
    traced = torch.jit.trace(Heads(), x)
    ranged = tt.Input(min_shape=(1, 1, 16), opt_shape=(2, 5, 16), max_shape=(4, 9, 16))
    kernels = {}
    for label, spec in (("static", x), ("ranged", ranged)):
        mod, _ = tt.from_torchscript(traced, [spec])
        fused = pipeline.fuse(mod, build.host_target())
        kernels[label] = fused["main"].script().count("R.call_tir(")
    assert kernels["ranged"] == kernels["static"] == 1
    compiled = tt.compile(traced, [ranged], never_slower=False)
    for shape in ((1, 1, 16), (3, 7, 16), (4, 9, 16)):
        x = torch.randn(shape)
        x[0, 0, 3] = float("nan")
        torch.testing.assert_close(compiled(x), Heads()(x), equal_nan=True)


def test_linear_weights_are_packed_for_the_opt_row_count():
    """Over a range of shapes the packed kernel is told the row count at opt_shape: the first
    call's would otherwise decide the weight's packing (one row made BERT-base's products at
    128 rows 10% slower); without an opt shape they pass 0 (the first call's). A static
    program's calls pass none: their row count is fixed, which the kernel relies on."""
    from tvmbridge import build, pipeline, schedule

    model = nn.Linear(16, 8).eval()
    traced = torch.jit.trace(model, torch.randn(2, 5, 16))
    ranged = tt.Input(min_shape=(1, 1, 16), opt_shape=(2, 6, 16), max_shape=(4, 9, 16))
    for spec, opt, rows in ((torch.randn(2, 5, 16), True, None), (ranged, True, 12),
                            (ranged, False, 0)):
        mod, _ = tt.from_torchscript(traced, [spec], keep_params_as_input=False)
        if not opt:
            mod["main"] = mod["main"].without_attr(schedule.OPT_EXTENTS_ATTRIBUTE)
        calls = [c for c in pipeline.fuse(mod, build.host_target())["main"].script().splitlines()
                 if "R.call_pure_packed(" in c and "linear" in c]
        assert len(calls) == 1
        passed = [n for n in (0, 12) if f", {n}, ty_args" in calls[0]]
        assert passed == ([] if rows is None else [rows]), calls[0]
    compiled = tt.compile(traced, [ranged], never_slower=False)
    with torch.no_grad():
        for shape in ((1, 1, 16), (4, 9, 16)):
            x = torch.randn(shape)
            torch.testing.assert_close(compiled(x), model(x), **TOLERANCE)
