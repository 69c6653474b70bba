"""torch.export and torch.compile through tvmbridge: ATen graphs partitioned, the supported
regions imported with TVM's own ExportedProgram translator, built, and put back as calls to
the same runtime op TorchScript modules use (``torch.ops.tvmbridge.run``).

* :func:`compile_exported` (``tvmbridge.torch.compile(model, inputs, ir="export")``): an
  ``nn.Module`` in, an ``fx.GraphModule`` out that PyTorch can export, save and load again.
* the ``torch.compile`` backend ``"tvmbridge"`` (:func:`backend`): found by name when the
  package is installed (its entry point), registered when this module is imported.

A region is a maximal set of nodes TVM's translator converts (its convert map, after
PyTorch's core-ATen decompositions); what it does not convert stays in PyTorch. Dynamic
dimensions (``torch.export.Dim``, or the ones dynamo marks) become symbolic shapes in Relax,
so one compiled region serves every size in the range.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import threading
from typing import Callable, Iterable, Sequence

import torch
import torch.fx as fx
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner

from . import _native, export_ops
from .errors import first_line
from .types import DTYPE_NAMES as _DTYPES

_log = logging.getLogger("tvmbridge")
_TORCH_DTYPES = {name: dtype for dtype, name in _DTYPES.items()}


# --- the runtime op under torch.export and torch.compile -----------------------------------

@dataclasses.dataclass
class _Spec:
    name: str
    shape: list  # ints, and str symbols or expressions for dynamic extents
    dtype: str


class FakeTVMModule:
    """What tracing sees of a ``torch.classes.tvmbridge.TVMModule``: its metadata, enough to
    give the outputs' shapes and dtypes (see the fake kernel of ``tvmbridge::run``)."""

    def __init__(self, metadata_json: str):
        metadata = json.loads(metadata_json)
        self._metadata_json = metadata_json
        self.inputs = [_Spec(**spec) for spec in metadata["inputs"]]
        self.outputs = [_Spec(**spec) for spec in metadata["outputs"]]

    @classmethod
    def __obj_unflatten__(cls, flattened):
        return cls(dict(flattened)["metadata_json"])

    # The real class's methods, as tracing sees them.
    def run(self, inputs):
        return _fake_run(self, inputs)

    def metadata_json(self) -> str:
        return self._metadata_json

    def alignment_copies(self) -> int:
        return 0

    def virtual_machines(self) -> int:
        return 1

    def set_virtual_machine_limit(self, limit: int) -> None:
        pass


def _fake_run(module, inputs):
    fake = getattr(module, "wrapped_obj", module)
    extents = {}
    for spec, tensor in zip(fake.inputs, inputs):
        for dim, extent in zip(spec.shape, tensor.shape):
            if isinstance(dim, str):
                extents.setdefault(dim, extent)
    outputs = []
    for spec in fake.outputs:
        shape = []
        for dim in spec.shape:
            if not isinstance(dim, str):
                shape.append(dim)
                continue
            try:  # a symbol of the inputs, or arithmetic of them ("2*s0")
                shape.append(eval(dim, {"__builtins__": {}}, dict(extents)))  # noqa: S307
            except Exception:
                shape.append(torch.library.get_ctx().new_dynamic_size())
        outputs.append(torch.empty(shape, dtype=_TORCH_DTYPES[spec.dtype]))
    return outputs


@functools.cache
def register_tracing_support() -> None:
    """The fake class and the fake kernel that let torch.export / torch.compile trace through
    compiled regions (once per process)."""
    _native.load_runtime()
    torch._library.register_fake_class("tvmbridge::TVMModule")(FakeTVMModule)
    torch.library.register_fake("tvmbridge::run")(_fake_run)


class TVMRegion(torch.nn.Module):
    """A compiled region in an fx graph: calls the TVM library with the region's inputs."""

    def __init__(self, module: torch.ScriptObject, single_output: bool):
        super().__init__()
        self.tvm_module = module
        self.single_output = single_output

    def forward(self, *inputs):
        outputs = torch.ops.tvmbridge.run(self.tvm_module, [t.contiguous() for t in inputs])
        return outputs[0] if self.single_output else tuple(outputs)


# --- building one region -----------------------------------------------------------------

def _specs(values: Sequence[torch.Tensor], prefix: str) -> list:
    """The tensors as C++ reads specs (as compile's inputs, ``torch._input_specs``): a dynamic
    extent has its symbol, or its expression in the input symbols ("2*s0"), in ``symbols``."""
    specs = []
    for i, tensor in enumerate(values):
        dynamic = [isinstance(extent, torch.SymInt) for extent in tensor.shape]
        spec = {"name": f"{prefix}{i}", "dtype": _DTYPES[tensor.dtype],
                "shape": [0 if symbolic else int(extent)
                          for extent, symbolic in zip(tensor.shape, dynamic)]}
        if any(dynamic):
            spec["symbols"] = [str(extent.node.expr) if symbolic else ""
                               for extent, symbolic in zip(tensor.shape, dynamic)]
        specs.append(spec)
    return specs


def _region_program(region: fx.GraphModule, examples: list, symbolic: list):
    """The region as an ExportedProgram; `symbolic[i]` lists the dims of input i that vary."""
    dynamic = [{d: torch.export.Dim.AUTO for d in dims} or None for dims in symbolic]
    return torch.export.export(region, tuple(examples), dynamic_shapes=dynamic, strict=False)


class RegionCache:
    """Built regions by graph, input specs and weights: a recompile of the same graph (a
    guard that failed elsewhere, a second torch.compile of the model) reuses them. They stay
    for the life of the process unless :meth:`clear` drops them."""

    def __init__(self):
        self._modules = {}
        self._timings = {}
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, key: str, build: Callable[[], torch.ScriptObject]) -> torch.ScriptObject:
        with self._lock:
            if key not in self._modules:
                self._modules[key] = build()
                self.builds += 1
            return self._modules[key]

    def timing(self, key: str, measure: Callable[[], "RegionTiming"]) -> "RegionTiming":
        """The verdict of ``never_slower`` on a built region, measured once per process."""
        with self._lock:
            if key not in self._timings:
                self._timings[key] = measure()
            return self._timings[key]

    def clear(self) -> None:
        with self._lock:
            self._modules.clear()
            self._timings.clear()


CACHE = RegionCache()


def _cache_key(region: fx.GraphModule, examples: list, symbolic: list, target,
               precision: str, never_slower: bool) -> str:
    """The region's code, input specs (dynamic dims as "?"), target, precision (and whether
    never_slower may build it in float32 instead), and the
    contents of the weights compiled into it (contents, not identity: a freed tensor's address
    comes back)."""
    digest = hashlib.sha256(region.code.encode())
    digest.update(f"{precision}{never_slower}".encode())
    for tensor, dims in zip(examples, symbolic):
        shape = ["?" if d in dims else n for d, n in enumerate(tensor.shape)]
        digest.update(f"{shape}{tensor.dtype}".encode())
    constants = dict(region.named_parameters())
    constants.update(region.named_buffers())
    for name, constant in sorted(constants.items()):
        data = constant.detach().contiguous().reshape(-1).view(torch.uint8)
        digest.update(f"{name}{list(constant.shape)}{constant.dtype}".encode())
        digest.update(data.numpy().tobytes() if data.numel() else b"")
    digest.update(str(target).encode())
    return digest.hexdigest()


def build_region(region: fx.GraphModule, examples: list, symbolic: list, target,
                 tuning=None, precision: str = "fp32",
                 never_slower: bool = True) -> torch.ScriptObject:
    """Exports `region`, imports it with TVM's translator, builds it and loads the library as
    a ``torch.classes.tvmbridge.TVMModule``."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    from . import build
    from .relax_patterns import has_call

    program = _region_program(region, examples, symbolic).run_decompositions(
        export_ops.decompositions())
    ir_module = from_exported_program(program, custom_convert_map=export_ops.CONVERTERS,
                                      run_ep_decomposition=False)
    # Batch norms fold into the convolutions before them, as freezing does on the TorchScript
    # path (TVM's translator keeps them as ops). Only where there are any: folding constants
    # here would also fold a quantized weight's dequantize into float32, and the build finds
    # the convolutions it runs on int8 kernels by that dequantize (quantized.py).
    batch_norm = tvm.ir.Op.get("relax.nn.batch_norm")
    if has_call(ir_module, lambda call: call.op == batch_norm):
        ir_module = tvm.transform.Sequential([relax.transform.FoldBatchnormToConv2D(),
                                              relax.transform.FoldConstant()])(ir_module)
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"
                    and n.name in program.graph_signature.user_inputs]
    outputs = [n for n in program.graph.nodes if n.op == "output"][0].args[0]
    inputs = _specs([n.meta["val"] for n in placeholders], "input_")
    results = _specs([n.meta["val"] for n in outputs], "output_")
    build_native = _native.global_func("tvmbridge.torch.build_region")
    metadata, library = build_native(ir_module, inputs, results,
                                     build.settings(target, tuning, precision, never_slower))
    return torch.classes.tvmbridge.TVMModule(str(metadata), torch.frombuffer(bytearray(library),
                                                                            dtype=torch.uint8))


# --- partitioning a graph ------------------------------------------------------------------

def _absorb_constants(parent: fx.GraphModule, call: fx.Node) -> None:
    """Moves the weights a fused region reads (get_attr inputs) into the region, so that TVM
    sees them as constants instead of inputs."""
    region = parent.get_submodule(call.target)
    placeholders = [n for n in region.graph.nodes if n.op == "placeholder"]
    kept = []
    for arg, placeholder in zip(call.args, placeholders):
        if isinstance(arg, fx.Node) and arg.op == "get_attr":
            name = arg.target.replace(".", "_")
            tensor = functools.reduce(getattr, arg.target.split("."), parent)
            region.register_buffer(name, tensor.detach(), persistent=False)
            with region.graph.inserting_before(placeholder):
                attribute = region.graph.get_attr(name)
            placeholder.replace_all_uses_with(attribute)
            region.graph.erase_node(placeholder)
        else:
            kept.append(arg)
    call.args = tuple(kept)
    region.recompile()


class _Recorder(fx.Interpreter):
    """Runs the graph on real inputs and keeps the arguments of each fused region's call."""

    def __init__(self, module: fx.GraphModule, regions: set):
        super().__init__(module)
        self.regions = regions
        self.arguments = {}

    def call_module(self, target, args, kwargs):
        if target in self.regions:
            self.arguments[target] = list(args)
        return super().call_module(target, args, kwargs)


def _symbolic_dims(node: fx.Node) -> list:
    value = node.meta.get("val", node.meta.get("example_value"))
    if not isinstance(value, torch.Tensor):
        return []
    return [d for d, extent in enumerate(value.shape) if not isinstance(extent, int)]


@dataclasses.dataclass(frozen=True)
class RegionTiming:
    """A built region timed against PyTorch running its nodes, on the same inputs
    (``never_slower``): medians of alternating runs, in milliseconds."""

    ops: int
    tvm_ms: float
    torch_ms: float

    @property
    def tvm_faster(self) -> bool:
        return self.tvm_ms < self.torch_ms


def _time_against_pytorch(region: fx.GraphModule, compiled: TVMRegion,
                          examples: list) -> RegionTiming:
    """Times `compiled` against `region` in PyTorch on the arguments the example run gave it
    (token ids and masks as the user gave them), with the loop that times TorchScript regions
    (``region_timing.cc``)."""
    time_alternately = _native.global_func("tvmbridge.torch.time_alternately")

    def run_torch() -> None:
        region(*examples)

    def run_tvm() -> None:
        compiled(*examples)

    with torch.no_grad():
        tvm_ms, torch_ms = time_alternately(run_torch, run_tvm)
    return RegionTiming(_count_ops(region), float(tvm_ms), float(torch_ms))


@dataclasses.dataclass
class PartitionReport:
    regions: int = 0  # compiled with TVM
    tvm_nodes: int = 0  # ops inside them
    torch_ops: dict = dataclasses.field(default_factory=dict)  # op -> count left to PyTorch
    # Regions TVM's translator or build failed on (they run in PyTorch), with the error.
    failed_regions: list = dataclasses.field(default_factory=list)
    # never_slower: a RegionTiming per built region; those TVM did not win run in PyTorch.
    timings: list = dataclasses.field(default_factory=list)

    @property
    def slower_regions(self) -> list:
        return [timing for timing in self.timings if not timing.tvm_faster]


def partition_and_build(module: fx.GraphModule, example_inputs: Sequence, target=None,
                        tuning=None, min_block_size: int = 3,
                        torch_executed_ops: Iterable[str] = (), precision: str = "fp32",
                        never_slower: bool = True) -> tuple:
    """Replaces every region of `module` (an ATen-level GraphModule with weights as
    attributes, as ``ExportedProgram.module()`` gives) that TVM translates by a
    :class:`TVMRegion`; returns (module, PartitionReport). With `never_slower`, a region
    TVM runs no faster than PyTorch (:func:`_time_against_pytorch`) stays in PyTorch."""
    from . import build

    target = build.resolve_target(target)
    precision = build.check_precision(precision)
    support = export_ops.TranslatableByTvm(torch_executed_ops)
    partitioner = CapabilityBasedPartitioner(module, support, allows_single_node_partition=True)
    partitions = [p for p in partitioner.propose_partitions()
                  if sum(map(export_ops.is_op, p.nodes)) >= min_block_size]
    report = PartitionReport()
    in_regions = {node for p in partitions for node in p.nodes}
    export_ops.tally(report.torch_ops, (n for n in module.graph.nodes if n not in in_regions))
    fused = partitioner.fuse_partitions(partitions)
    calls = [n for n in fused.graph.nodes if n.op == "call_module" and n.target.startswith("fused_")]
    for call in calls:
        _absorb_constants(fused, call)
    recorder = _Recorder(fused, {c.target for c in calls})
    recorder.run(*example_inputs)
    for call in calls:
        region = fused.get_submodule(call.target)
        examples = recorder.arguments[call.target]
        symbolic = [_symbolic_dims(a) if isinstance(a, fx.Node) else [] for a in call.args]
        key = _cache_key(region, examples, symbolic, target, precision, never_slower)
        try:
            compiled = CACHE.get(key, lambda: build_region(region, examples, symbolic, target,
                                                           tuning, precision, never_slower))
        except Exception as error:  # TVM's translator or build refused what its map lists
            reason = first_line(error)
            _log.warning("tvmbridge: a region of %d op(s) stays in PyTorch: TVM failed on it "
                         "(%s: %s)", _count_ops(region), type(error).__name__, reason[:300])
            export_ops.tally(report.torch_ops, region.graph.nodes)
            report.failed_regions.append(f"{type(error).__name__}: {reason[:300]}")
            continue
        output = [n for n in region.graph.nodes if n.op == "output"][0]
        tvm_region = TVMRegion(compiled, single_output=not isinstance(output.args[0],
                                                                      (tuple, list)))
        if never_slower:
            timing = CACHE.timing(key, lambda: _time_against_pytorch(region, tvm_region,
                                                                     examples))
            report.timings.append(timing)
            if not timing.tvm_faster:
                _log.info("tvmbridge: a region of %d op(s) stays in PyTorch: TVM measured "
                          "%.3f ms against PyTorch's %.3f ms", timing.ops, timing.tvm_ms,
                          timing.torch_ms)
                export_ops.tally(report.torch_ops, region.graph.nodes)
                continue
        setattr(fused, call.target, tvm_region)
        report.regions += 1
        report.tvm_nodes += _count_ops(region)
    # The weights now inside regions leave get_attr nodes nobody reads: the generated forward
    # would still walk each one's attribute chain on every call (MobileNet-V2 PT2E: 1.1 ms of
    # 4.3), and the modules holding them would keep the float32 weights alive.
    fused.graph.eliminate_dead_code()
    fused.delete_all_unused_submodules()
    fused.recompile()
    return fused, report


def _count_ops(region: fx.GraphModule) -> int:
    return sum(map(export_ops.is_op, region.graph.nodes))


# --- the two entry points ------------------------------------------------------------------


def compile_exported(model: torch.nn.Module, inputs: Sequence[torch.Tensor], target=None, *,
                     dynamic_shapes=None, min_block_size: int = 3,
                     torch_executed_ops: Iterable[str] = (), require_full_compilation=False,
                     tuning=None, precision: str = "fp32",
                     never_slower: bool = True) -> fx.GraphModule:
    """``torch.export`` of `model` (eval mode, no grad), partitioned and compiled; see the
    module docstring. `never_slower` (ignored under `require_full_compilation`): regions TVM
    runs no faster than PyTorch, timed on `inputs`, stay in PyTorch. The result is an
    ``fx.GraphModule`` taking the same inputs; its ``tvmbridge_report`` says what stayed in
    PyTorch."""
    from .errors import UnsupportedOperatorError

    register_tracing_support()
    model = _in_eval_mode(model)
    with torch.no_grad():
        program = torch.export.export(model, tuple(inputs), dynamic_shapes=dynamic_shapes)
        program = program.run_decompositions(export_ops.decompositions())
        module, report = partition_and_build(
            program.module(), list(inputs), target, tuning, min_block_size, torch_executed_ops,
            precision, never_slower=never_slower and not require_full_compilation)
    if require_full_compilation and report.torch_ops:
        listed = ", ".join(f"{op} ({n})" for op, n in sorted(report.torch_ops.items()))
        raise UnsupportedOperatorError(
            f"tvmbridge: require_full_compilation=True, but these ops stay in PyTorch: {listed}")
    module.tvmbridge_report = report
    return module


def _in_eval_mode(model: torch.nn.Module) -> torch.nn.Module:
    """`model` switched to eval mode, where it has one: a model that went through PT2E's
    convert_pt2e refuses ``eval()`` (NotImplementedError) because its graph already is the
    inference one."""
    try:
        return model.eval()
    except NotImplementedError:
        return model


def _is_weight(node: fx.Node) -> bool:
    """A placeholder dynamo made for a parameter or buffer of the model."""
    from torch._dynamo.source import ParamBufferSource, UnspecializedParamBufferSource

    source = getattr(node.meta.get("grapharg"), "source", None)
    while source is not None:
        if isinstance(source, (ParamBufferSource, UnspecializedParamBufferSource)):
            return True
        source = getattr(source, "base", None)
    return False


def _sizes_of_tensor_inputs(graph: fx.Graph, placeholders: list) -> dict:
    """For each symbolic size of a tensor input (by its expression, "s0"), a node that reads it
    (aten.sym_size.int), placed after the inputs."""
    sizes = {}
    with graph.inserting_after(placeholders[-1]):
        for node in reversed(placeholders):
            value = node.meta.get("example_value")
            if not isinstance(value, torch.Tensor):
                continue
            for dim, extent in enumerate(value.shape):
                if isinstance(extent, torch.SymInt):
                    sizes[str(extent.node.expr)] = graph.call_function(
                        torch.ops.aten.sym_size.int, (node, dim))
    return sizes


BACKEND_OPTIONS = ("target", "min_block_size", "torch_executed_ops", "tuning", "precision",
                   "never_slower")


def backend(graph_module: fx.GraphModule, example_inputs: list, options: dict | None = None,
            **settings):
    """``torch.compile(model, backend="tvmbridge")``: dynamo's graph with the model's
    parameters and buffers frozen into it (inference: later writes to them are not seen),
    exported to ATen with the dimensions dynamo marked dynamic kept symbolic, partitioned and
    compiled. Regions are cached (:data:`CACHE`) across recompiles. `options`
    (``torch.compile(..., options={...})``): ``target``, ``min_block_size``,
    ``torch_executed_ops``, ``tuning``, ``precision``, ``never_slower`` (default True: regions
    TVM runs no faster than PyTorch on the first call's inputs stay in PyTorch); dynamo passes
    them as ``options``,
    a direct call may pass them as keywords."""
    options = {**(options or {}), **settings}
    unknown = sorted(set(options) - set(BACKEND_OPTIONS))
    if unknown:
        raise ValueError(f"tvmbridge backend: unknown option(s) {', '.join(unknown)}; it takes "
                         f"{', '.join(BACKEND_OPTIONS)}")
    register_tracing_support()
    # A copy: dynamo keeps using its graph (it calls us with that graph's inputs).
    graph = fx.Graph()
    graph.output(graph.graph_copy(graph_module.graph, {}))
    graph.set_codegen(fx.graph.CodeGen())  # named arguments, as torch.export wants
    flat = fx.GraphModule(graph_module, graph)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    sizes = _sizes_of_tensor_inputs(graph, placeholders)
    user_positions, dynamic = [], []
    for position, (node, value) in enumerate(zip(placeholders, example_inputs)):
        if isinstance(value, torch.SymInt):
            # With dynamic shapes dynamo passes the sizes as inputs too: read them off the
            # tensors instead (torch.export takes tensors and plain numbers).
            node.replace_all_uses_with(sizes[str(value.node.expr)])
            graph.erase_node(node)
            continue
        if isinstance(value, torch.Tensor) and _is_weight(node):
            name = f"_tvmbridge_weight_{position}"
            flat.register_buffer(name, value.detach(), persistent=False)
            with graph.inserting_before(node):
                node.replace_all_uses_with(graph.get_attr(name))
            graph.erase_node(node)
            continue
        user_positions.append(position)
        dims = _symbolic_dims(node) if isinstance(value, torch.Tensor) else []
        dynamic.append({d: torch.export.Dim.AUTO for d in dims} or None)
    flat.recompile()
    user_inputs = [example_inputs[p] for p in user_positions]
    # Outside dynamo's tracing context: torch.export would otherwise take over its shape
    # environment, whose guards name dynamo's frame (L['x']).
    with torch.no_grad(), torch._guards.tracing(None):
        program = torch.export.export(flat, tuple(user_inputs),
                                      dynamic_shapes=tuple(dynamic), strict=False)
        program = program.run_decompositions(export_ops.decompositions())
        compiled, report = partition_and_build(
            program.module(), user_inputs, options.get("target"),
            options.get("tuning"),
            options.get("min_block_size", 3), options.get("torch_executed_ops", ()),
            options.get("precision", "fp32"), options.get("never_slower", True))

    def run(*inputs):
        return compiled(*[inputs[p] for p in user_positions])

    run.tvmbridge_report = report
    return run


def _register_backend() -> None:
    from torch._dynamo import register_backend

    try:
        register_backend(name="tvmbridge")(backend)
    except Exception:  # already registered (a reload): keep the first
        pass


_register_backend()
