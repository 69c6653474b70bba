"""Compile TorchScript modules with TVM and get TorchScript modules back.

    import tvmbridge.torch as tt
    compiled = tt.compile(torch.jit.script(model), inputs=[tt.Input((1, 3, 224, 224))])
    torch.jit.save(compiled, "model_tvm.pt")

    mod, params = tt.from_torchscript(scripted, inputs=[tt.Input((1, 3, 224, 224))])
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import json
import logging
import os
import time
import warnings
from typing import Sequence, Union

import torch

from . import _native
from .tuning import Tuning
from .types import DTYPE_NAMES, Input

__all__ = ["CAUSES", "Explanation", "Input", "Tuning", "compile", "disable", "enable",
           "enable_statistics", "enabled", "explain", "is_enabled", "from_torchscript", "report",
           "save", "supported_ops", "unsupported_ops"]

_log = logging.getLogger("tvmbridge")

InputLike = Union[Input, torch.Tensor]
ModuleLike = Union[torch.jit.ScriptModule, torch.jit.ScriptFunction, str, os.PathLike]


def _as_input(item: InputLike) -> Input:
    return item if isinstance(item, Input) else Input(tuple(item.shape), item.dtype)


def _example_value(item, where: str):
    """A value of a non-tensor input, as tvm-ffi carries it to C++ (tensors on the CPU,
    tuples as lists); C++ checks it against forward's declared type."""
    if isinstance(item, torch.Tensor):
        return item.detach().to("cpu").contiguous()
    if isinstance(item, (list, tuple)):
        return [_example_value(x, f"{where}[{k}]") for k, x in enumerate(item)]
    if isinstance(item, dict):
        return {_example_value(k, f"{where} (a key)"): _example_value(v, f"{where}[{k!r}]")
                for k, v in item.items()}
    if item is None or isinstance(item, (bool, int, float, str)):
        return item
    raise TypeError(
        f"tvmbridge: {where} is a {type(item).__name__}; expected tvmbridge.torch.Input, an "
        "example torch.Tensor, or the value of an input that is not a tensor (a number, str, "
        "None, or a list, tuple or dict of them and tensors)")


def _dim_symbol(symbols: dict, position: int, extents: tuple, name: "str | None") -> str:
    """The symbol of a dynamic dim: `name` where given, else one per (position, range) across
    the inputs, "d<position>" (then "d<position>_2", ... for other ranges there)."""
    key = (position, *extents)
    if name is not None:
        symbols.setdefault(key, name)
        return name
    if key not in symbols:
        taken, suffix, symbol = set(symbols.values()), 2, f"d{position}"
        while symbol in taken:
            symbol, suffix = f"d{position}_{suffix}", suffix + 1
        symbols[key] = symbol
    return symbols[key]


def _input_specs(inputs: Sequence):
    """(specs, examples), one entry per forward input; a spec is the dict C++ reads
    (``name``, ``dtype``, ``shape``, and for a range of shapes ``ranges`` as [min, opt, max]
    per dim and ``symbols``, "" for a fixed dim). A tensor input (an :class:`Input` or an
    example tensor): its spec, and as example the caller's tensor, values drawn from the
    Input's value_range, or None (random values of the spec, drawn in C++). Any other input (an
    int, None for an optional, a list of tensors...): its example value, with an empty dtype
    (C++ gives it forward's declared type)."""
    if isinstance(inputs, (Input, torch.Tensor)):
        inputs = [inputs]
    specs, examples = [], []
    symbols = {}  # (position, min, opt, max) -> its symbol
    for index, item in enumerate(inputs):
        if not isinstance(item, (Input, torch.Tensor)):
            specs.append({"name": "", "dtype": "", "shape": []})
            examples.append(_example_value(item, f"inputs[{index}]"))
            continue
        spec = _as_input(item)
        entry = {"name": spec.name or "", "dtype": DTYPE_NAMES[spec.dtype],
                 "shape": list(spec.shape)}
        if spec.is_dynamic:
            ranges = list(zip(spec.min_shape, spec.opt_shape, spec.max_shape))
            names = spec.dim_names or (None,) * len(ranges)
            entry["ranges"] = [list(r) for r in ranges]
            entry["symbols"] = ["" if r[0] == r[2] else _dim_symbol(symbols, d, r, named)
                                for d, (r, named) in enumerate(zip(ranges, names))]
        specs.append(entry)
        if isinstance(item, torch.Tensor):
            examples.append(_example_value(item, f"inputs[{index}]"))
        elif spec.value_range is not None:
            examples.append(spec.example())
        else:
            examples.append(None)
    return specs, examples


def _function_module(function: torch.jit.ScriptFunction) -> torch.jit.ScriptModule:
    """A module whose forward calls `function` (``@torch.jit.script def f`` or
    ``torch.jit.trace(f, ...)``) with its own parameters, names and types."""
    arguments = function.schema.arguments
    parameters = ", ".join(f"{a.name}: {a.type.annotation_str}" for a in arguments)
    names = ", ".join(a.name for a in arguments)
    # A class per function: TorchScript types are per class, and each gets its own forward.
    module = torch.jit.script(type(function.name, (torch.nn.Module,), {})())
    # define() resolves `function` among this frame's locals.
    module.define(f"def forward(self, {parameters}):\n    return function({names})\n")
    return module


def _archive(module: ModuleLike) -> bytes:
    """The module as torch.jit.save writes it: what the C++ frontend reads."""
    if isinstance(module, torch.jit.ScriptFunction):
        module = _function_module(module)
    if isinstance(module, (str, os.PathLike)):
        with open(module, "rb") as f:
            return f.read()
    if isinstance(module, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        return buffer.getvalue()
    if isinstance(module, torch.nn.Module):
        raise TypeError(
            "tvmbridge compiles TorchScript: pass torch.jit.script(model) or "
            "torch.jit.trace(model, example_inputs), or the path of a saved .pt file"
        )
    raise TypeError(f"tvmbridge: expected a TorchScript module or a path, got {type(module).__name__}")


def from_torchscript(module: ModuleLike, inputs: Sequence[InputLike],
                     keep_params_as_input: "bool | None" = None, *, fallback: "str | None" = None,
                     min_block_size: int = 1):
    """Converts a TorchScript module to a TVM Relax IRModule.

    Returns ``(mod, params)``: ``mod["main"]`` takes the inputs followed by the weights, and
    ``params`` maps each weight's name (``"fc.weight"``) to its value, in that order. With
    ``keep_params_as_input=False`` weights are embedded as constants and ``params`` is empty.

    ``fallback="torchscript"``: what TVM cannot convert does not stop the conversion; each run
    of such nodes becomes a call of ``tvmbridge.torchscript.run``, which runs it as
    TorchScript (serialised into the module, so ``export_library`` keeps it) through libtorch.
    The model is frozen and split as :func:`compile` splits it (``min_block_size`` as there;
    runs of fewer TVM ops join the TorchScript around them), so weights are embedded and
    ``params`` is empty. Running the result needs ``import tvmbridge`` (or, from C++,
    ``libtvmbridge_torch_runtime.so`` loaded), which registers that function.

    Ops that read through indices (embedding, gather, index, ...) or divide integers check
    those values at run time by calling ``tvmbridge.check_values``, which raises IndexError
    (or RuntimeError) for a value PyTorch would refuse; a module with such ops runs where that
    function is registered too (``import tvmbridge``, or the runtime library in C++).
    """
    specs, examples = _input_specs(inputs)
    for index, spec in enumerate(specs):
        if not spec["dtype"]:
            raise TypeError(f"tvmbridge: from_torchscript takes tensor inputs (a Relax function's "
                            f"parameters); inputs[{index}] is a "
                            f"{type(inputs[index]).__name__} (compile() takes such inputs)")
    if fallback is not None:
        if fallback != "torchscript":
            raise ValueError(f"tvmbridge: fallback must be None or 'torchscript', got {fallback!r}")
        if keep_params_as_input:
            raise ValueError("tvmbridge: with fallback='torchscript' weights are embedded "
                             "(the model is frozen to be split); keep_params_as_input=True "
                             "cannot be honoured")
        options = _partition_options(min_block_size, (), (), False)
        convert = _native.global_func("tvmbridge.frontend.from_torchscript_with_fallback")
        return convert(_archive(module), specs, options, examples), {}
    keep = True if keep_params_as_input is None else bool(keep_params_as_input)
    convert = _native.global_func("tvmbridge.frontend.from_torchscript")
    mod, param_names, values = convert(_archive(module), specs, keep)
    return mod, dict(zip((str(n) for n in param_names), values))


def supported_ops() -> list[str]:
    """Every op kind the C++ frontend converts to Relax (``aten::conv2d``, ``prim::If``...),
    sorted. ``tvmbridge coverage`` prints it and compares it with other lists."""
    return sorted(str(kind) for kind in _native.global_func("tvmbridge.frontend.supported_ops")())


def unsupported_ops(module: ModuleLike) -> list[str]:
    """The op kinds in the (frozen, inlined) module that tvmbridge cannot convert."""
    find = _native.global_func("tvmbridge.frontend.unsupported_ops")
    return [str(kind) for kind in find(_archive(module))]


def _partition_options(min_block_size, torch_executed_ops, torch_executed_modules,
                       require_full_compilation, never_slower=False) -> dict:
    """The partitioner's options, checked, as the C++ side reads them (a map of typed values)."""
    if (not isinstance(min_block_size, int) or isinstance(min_block_size, bool)
            or min_block_size < 1):
        raise ValueError(f"tvmbridge: min_block_size must be a positive int, got {min_block_size!r}")
    for name, value in (("torch_executed_ops", torch_executed_ops),
                        ("torch_executed_modules", torch_executed_modules)):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"tvmbridge: {name} must be a list of strings, got {value!r}")
    return {
        "min_block_size": min_block_size,
        "torch_executed_ops": list(torch_executed_ops),
        "torch_executed_modules": list(torch_executed_modules),
        "require_full_compilation": bool(require_full_compilation),
        "never_slower": bool(never_slower),
    }


def compile(
    module: ModuleLike,
    inputs: Sequence[InputLike],
    target=None,
    *,
    min_block_size: int = 3,
    torch_executed_ops: Sequence[str] = (),
    torch_executed_modules: Sequence[str] = (),
    require_full_compilation: bool = False,
    never_slower: bool = True,
    tuning: "Tuning | None" = None,
    precision="fp32",
    ir: str = "torchscript",
    dynamic_shapes=None,
) -> torch.jit.ScriptModule:
    """Compiles a TorchScript module with TVM and returns a TorchScript module that runs it.

    ``module``: a scripted, traced or loaded TorchScript module, or the path of a ``.pt`` file.
    ``inputs``: per forward argument, an :class:`Input` or an example tensor (static shapes)
    for a tensor; for any other argument (an ``int``, ``None`` or a tensor for an
    ``Optional[Tensor]``, a list, tuple or dict of tensors), its example value. Such arguments
    stay arguments of the result: what reads them runs in TorchScript, and tensors taken out
    of them are checked against the shapes the example gave, like tensor inputs.
    ``target``: a TVM target (``tvm.target.Target``, dict or JSON); default: this CPU.

    Nodes TVM cannot take (unsupported ops, data-dependent shapes and control flow) stay in
    TorchScript; the rest is grouped into regions, each compiled to one TVM module:
    ``min_block_size``: regions with fewer ops stay in PyTorch, but for one op that is a whole
    layer (``aten::lstm``, ``aten::gru``, ``aten::rnn_*``, PyTorch's fused transformer encoder
    layer and multi-head attention), which makes a region alone;
    ``torch_executed_ops`` / ``torch_executed_modules``: op names (``"aten::topk"``) and
    submodules (class or attribute names) forced to PyTorch;
    ``require_full_compilation``: fail, listing every node TVM cannot take, instead.
    :func:`explain` shows the decisions.

    ``never_slower``: time each compiled region against PyTorch running the same nodes on the
    values the example runs gave it (see :class:`Input`; token ids and indices included), and
    keep PyTorch for regions where TVM is slower (the log and the compile report say which).
    Ignored under ``require_full_compilation``. With ``precision="bf16"`` on CPUs without AMX
    (where bfloat16 need not be faster), it also builds each region in float32 and keeps the
    build that runs faster (the log says which); ``never_slower=False`` keeps bfloat16.

    ``tuning``: a :class:`tvmbridge.Tuning` to auto-tune each region with MetaSchedule first
    (minutes to tens of minutes; records are kept in a database that later compiles reuse).
    Without it, functions get tvmbridge's default CPU schedules.

    ``precision``: ``"fp32"`` (default) or ``"bf16"`` (also ``torch.float32`` /
    ``torch.bfloat16``). With ``"bf16"``, matrix products (linear layers, attention) take
    bfloat16 operands (weights stored in bfloat16) and accumulate in float32 on oneDNN's AMX
    or AVX512-BF16 kernels; everything else (softmax, normalisation, activations) and the
    model's inputs and outputs stay float32. README states the accuracy.

    The result's ``forward`` takes the same tensors and returns what the original returned.
    It saves with ``torch.jit.save`` into one file that ``torch.jit.load`` reads back in any
    process that has imported ``tvmbridge`` (or, from C++, that links
    ``libtvmbridge_torch_runtime.so``).

    ``ir="export"``: `module` is an ``nn.Module``, captured with ``torch.export`` (with
    ``dynamic_shapes``, as torch.export takes them: those dimensions stay symbolic and one
    compile serves every size in range); the regions TVM's ExportedProgram translator takes
    are compiled, and the result is an ``fx.GraphModule`` that ``torch.export.export`` /
    ``save`` / ``load`` handle (tvmbridge/export.py). ``torch_executed_ops``,
    ``min_block_size``, ``require_full_compilation``, ``never_slower`` (timed on `inputs`),
    ``tuning`` and ``precision`` apply; TorchScript's ``torch_executed_modules`` does not.
    """
    from . import build

    if ir == "export":
        from . import export

        if isinstance(module, (torch.jit.ScriptModule, str, os.PathLike)):
            raise TypeError("tvmbridge: ir='export' takes an nn.Module (torch.export captures "
                            "it); TorchScript modules use ir='torchscript'")
        return export.compile_exported(
            module, [i.example() if isinstance(i, Input) else i for i in inputs],
            target, dynamic_shapes=dynamic_shapes, min_block_size=min_block_size,
            torch_executed_ops=torch_executed_ops,
            require_full_compilation=require_full_compilation, tuning=tuning,
            precision=precision, never_slower=never_slower)
    if ir != "torchscript":
        raise ValueError(f"tvmbridge: ir must be 'torchscript' or 'export', got {ir!r}")
    if dynamic_shapes is not None:
        raise ValueError("tvmbridge: dynamic_shapes needs ir='export' (TorchScript compiles for "
                         "static shapes)")

    options = _partition_options(min_block_size, torch_executed_ops, torch_executed_modules,
                                 require_full_compilation, never_slower)
    precision = build.check_precision(precision)
    archive = _archive(module)
    resolved = build.resolve_target(target)
    if resolved.kind.name != "llvm":
        raise ValueError(f"tvmbridge: compiled modules run on the CPU so far; the target must be "
                         f"an llvm target, got '{resolved.kind.name}'")
    specs, examples = _input_specs(inputs)
    if tuning is not None and not isinstance(tuning, Tuning):
        raise TypeError(f"tvmbridge: tuning must be a tvmbridge.Tuning, got {type(tuning).__name__}")
    started = time.perf_counter()
    _log.info("tvmbridge: partitioning and compiling with TVM for %s", resolved)
    compile_native = _native.global_func("tvmbridge.torch.compile")
    compiled, report = compile_native(archive, specs, options,
                                      build.settings(resolved, tuning, precision,
                                                     never_slower), examples)
    summary = Explanation(json.loads(str(report)))
    _log.info("tvmbridge: compiled in %.1f s: %s", time.perf_counter() - started, summary.summary())
    for region in summary.measured_slower:
        _log.info("tvmbridge: a region of %d node(s) stays in PyTorch: TVM measured slower "
                  "(%.3g ms vs PyTorch %.3g ms)", region["nodes"], region["tvm_ms"],
                  region["torch_ms"])
    for failure in summary.build_failures:
        warnings.warn(f"tvmbridge: TVM could not build a region of {failure['nodes']} node(s); "
                      f"it runs in PyTorch ({failure['error']})", stacklevel=2)
    loaded = torch.jit.load(io.BytesIO(bytes(compiled)))
    # torch.jit.save(m, path) calls m.save(path): this class makes that the whole-or-nothing
    # save below. torch.jit.load cannot make it, so the class is given to the loaded object.
    object.__setattr__(loaded, "__class__", CompiledModule)
    return loaded


def save(module: torch.jit.ScriptModule, path: "str | os.PathLike", _extra_files=None) -> None:
    """``torch.jit.save(module, path)``, whole or not at all.

    PyTorch's save writes the file in place: a write that fails part-way (a full disk) leaves
    a truncated file where the old one was, and ends the process (the error is raised in a
    destructor). This makes the archive in memory, writes it beside ``path`` and renames it
    over ``path``; on failure it raises RuntimeError naming the path and the reason, and an
    existing file stays as it was. Modules returned by :func:`compile` save this way through
    ``torch.jit.save`` too."""
    if not isinstance(module, torch.jit.ScriptModule):
        raise TypeError(f"tvmbridge.save: expected a TorchScript module, got "
                        f"{type(module).__name__}")
    archive = module.save_to_buffer(_extra_files=_extra_files or {})
    _native.runtime_func("tvmbridge.write_file_atomically")(os.fspath(path), archive)


class CompiledModule(torch.jit.RecursiveScriptModule):
    """What :func:`compile` returns: a TorchScript module whose ``save`` (and so
    ``torch.jit.save``) is :func:`save`."""

    def save(self, f, _extra_files=None):
        save(self, f, _extra_files)


DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "tvmbridge", "groups")


def enable(
    target=None,
    *,
    min_block_size: int = 3,
    never_slower: bool = True,
    tuning: "Tuning | None" = None,
    precision="fp32",
    cache_dir: "str | os.PathLike | None" = DEFAULT_CACHE_DIR,
    require_full_compilation: bool = False,
    dynamic: bool = False,
) -> None:
    """Lets TorchScript hand supported subgraphs to TVM by itself, for every TorchScript
    module in the process (scripted, traced, loaded, frozen) whose graph is optimised from now
    on.

    When TorchScript's executor optimises a graph (after its profiling run: the second call of
    a fresh module), runs of supported ops become ``tvmbridge::CompilationGroup`` nodes. A
    group compiles on its first call with the real input shapes and dtypes (weights and
    scalar inputs compiled in), once per signature, also when threads race for it; the
    result is kept in memory and under ``cache_dir`` (``None``: memory only), so another
    process with the same model starts from disk. What cannot be compiled runs the original
    subgraph in TorchScript, with one warning. Inference only: calls whose inputs require
    grad run TorchScript (use ``torch.no_grad()``); under grad mode, modules with trainable
    parameters get differentiable graphs from TorchScript and no groups.

    ``require_full_compilation=True`` (torch_tvm's ``strict=True``): a group that cannot run
    wholly in TVM raises at its first call instead of running in TorchScript (ops outside
    groups, which tvmbridge has no converter for, still run in TorchScript).

    ``dynamic=True`` (``torch.compile``'s automatic dynamic shapes): a group compiles its first
    shape exactly; when a later call changes some extents (a sequence length, a batch), it
    compiles one version over ranges for them instead, symbolic in those dims, and widens it
    when a call falls outside (ranges grow to the next power of two, so a run of ever longer
    inputs costs a logarithmic number of compiles). Extents that changed together share one
    symbol. A group that cannot compile over ranges warns and goes on per shape.

    ``target``, ``min_block_size``, ``never_slower``, ``tuning`` and ``precision`` mean what
    they mean for :func:`compile`. Calling it again replaces the settings for graphs optimised later.
    """
    from . import build

    resolved = build.resolve_target(target)
    if resolved.kind.name != "llvm":
        raise ValueError(f"tvmbridge.enable: groups run on the CPU so far; the target must be "
                         f"an llvm target, got '{resolved.kind.name}'")
    if tuning is not None and not isinstance(tuning, Tuning):
        raise TypeError(f"tvmbridge: tuning must be a tvmbridge.Tuning, got {type(tuning).__name__}")
    if not isinstance(dynamic, bool):
        raise TypeError(f"tvmbridge.enable: dynamic must be True or False, got {dynamic!r}")
    options = _partition_options(min_block_size, (), (), require_full_compilation, never_slower)
    precision = build.check_precision(precision)
    folder = "" if cache_dir is None else os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))
    from ._version import __version__

    settings = build.settings(resolved, tuning, precision, never_slower)
    fingerprint = json.dumps({"target": settings["target"], "tvm": settings["tvm_version"],
                              "tvmbridge": __version__, "options": options,
                              "tuning": repr(tuning), "precision": precision}, sort_keys=True)
    _release_at_exit()
    _native.global_func("tvmbridge.torch.enable")(options, settings, folder, fingerprint, dynamic)


@functools.cache
def _release_at_exit():
    # The C++ side holds the build function, a Python callable: it must be dropped while
    # Python still runs, not by C++ static destructors after the interpreter is gone.
    atexit.register(_native.global_func("tvmbridge.torch.release_enable_settings"))


def disable() -> None:
    """Graphs TorchScript optimises from now on stay stock TorchScript. Modules already
    optimised keep their compilation groups (TorchScript optimises a graph once); script or
    trace again for a stock one."""
    if _native.compiler_loaded():
        _native.global_func("tvmbridge.torch.disable")()


@contextlib.contextmanager
def enabled(target=None, **options):
    """``with tvmbridge.torch.enabled(): ...``: :func:`enable` for the block, restoring the
    previous state after it."""
    was_enabled = is_enabled()
    enable(target, **options)
    try:
        yield
    finally:
        if not was_enabled:
            disable()


def is_enabled() -> bool:
    """Whether :func:`enable` is in effect."""
    return _native.compiler_loaded() and bool(
        _native.global_func("tvmbridge.torch.is_enabled")())


def enable_statistics() -> dict:
    """Counters of :func:`enable` in this process: ``groups`` made by the pass, ``compiles``
    (one per group and input signature), ``symbolic_compiles`` (those over ranges of extents,
    under ``dynamic=True``), ``disk_loads`` (compiled groups read from the cache
    instead), ``fallbacks`` (signatures running TorchScript) and ``grad_calls``."""
    return json.loads(str(_native.global_func("tvmbridge.torch.enable_statistics")()))


def report(compiled: "torch.jit.ScriptModule | torch.fx.GraphModule"):
    """What :func:`compile` decided for `compiled` (also after saving and loading it): the
    regions, with ``tvm_ms`` / ``torch_ms`` where ``never_slower`` measured them, and every
    node's placement and reason, as an :class:`Explanation`; for a module compiled with
    ``ir="export"``, its :class:`tvmbridge.export.PartitionReport`."""
    if not hasattr(compiled, "tvmbridge_report"):
        raise TypeError("tvmbridge.report: expected a module made by tvmbridge.torch.compile")
    if not isinstance(compiled.tvmbridge_report, str):
        return compiled.tvmbridge_report  # ir="export": the PartitionReport itself
    return Explanation(json.loads(compiled.tvmbridge_report))


def explain(
    module: ModuleLike,
    inputs: Sequence[InputLike],
    *,
    min_block_size: int = 3,
    torch_executed_ops: Sequence[str] = (),
    torch_executed_modules: Sequence[str] = (),
) -> "Explanation":
    """Where :func:`compile` would run each node (TVM region k or PyTorch) and why; prints as
    a table per op kind. Nothing is compiled."""
    options = _partition_options(min_block_size, torch_executed_ops, torch_executed_modules, False)
    specs, examples = _input_specs(inputs)
    explain_native = _native.global_func("tvmbridge.torch.explain")
    return Explanation(json.loads(str(explain_native(_archive(module), specs,
                                                     options, examples))))


# Why a node runs where it runs (partition::PlacementCause): in TVM, computed at compile time,
# bookkeeping around PyTorch code (write_back, packs_for_pytorch), or a fallback.
CAUSES = ("tvm", "constant", "unsupported", "input_from_pytorch", "data_dependent_shape",
          "control_flow", "raises", "user_choice", "aliased_write", "result_for_pytorch",
          "below_min_block_size", "build_failed", "measured_slower", "write_back",
          "packs_for_pytorch")


class Explanation:
    """The partitioner's decisions: ``regions`` (TVM modules) and ``nodes`` (one entry per
    node: ``kind``, ``region`` (-1 for PyTorch), ``cause`` (one of :data:`CAUSES`), ``reason``
    (the cause in words, with its detail), ``fallback`` (True when it runs in PyTorch because
    TVM could not or may not take it; False in TVM, for constants and for bookkeeping),
    ``source``)."""

    def __init__(self, report: dict):
        self.regions = report["regions"]
        self.nodes = report["nodes"]
        # Regions TVM could not build, which run in PyTorch: {"nodes": n, "error": TVM's}.
        self.build_failures = report.get("build_failures", [])
        # Regions never_slower returned to PyTorch: {"nodes": n, "tvm_ms": t, "torch_ms": p}.
        self.measured_slower = report.get("measured_slower", [])

    def nodes_for(self, cause: str) -> list[dict]:
        """The nodes placed for `cause` (one of :data:`CAUSES`)."""
        if cause not in CAUSES:
            raise ValueError(f"tvmbridge: unknown cause {cause!r}; expected one of {CAUSES}")
        return [n for n in self.nodes if n["cause"] == cause]

    @property
    def torch_nodes(self) -> list[dict]:
        """Nodes that run in PyTorch for a reason (unsupported, or TVM measured slower)."""
        return [n for n in self.nodes if n["fallback"]]

    def placement_of(self, kind: str) -> set[str]:
        return {_where(n) for n in self.nodes if n["kind"] == kind}

    def summary(self) -> str:
        tvm_nodes = sum(1 for n in self.nodes if n["region"] >= 0)
        return (f"{len(self.regions)} TVM region(s) with {tvm_nodes} node(s), "
                f"{len(self.torch_nodes)} node(s) in PyTorch")

    def __str__(self) -> str:
        rows = {}
        for node in self.nodes:
            key = (node["kind"], _where(node), node["reason"])
            rows[key] = rows.get(key, 0) + 1
        width = max([len(k[0]) for k in rows] + [7])
        lines = [self.summary(), "", f"{'op':{width}}  {'count':>5}  {'runs in':12}  reason"]
        for (kind, where, reason), count in sorted(rows.items()):
            lines.append(f"{kind:{width}}  {count:5}  {where:12}  {reason}")
        return "\n".join(lines)

    __repr__ = __str__


def _where(node: dict) -> str:
    return f"TVM block {node['region']}" if node["region"] >= 0 else "PyTorch"
