"""Auto-tuning with TVM's MetaSchedule, resumable and shared across models.

    compiled = tt.compile(scripted, inputs=[...],
                          tuning=tt.Tuning(trials=2000, time_budget="30min"))

The database lives under ``Tuning.database`` in one folder per target (records made for one
CPU say nothing about another). A task is a fused TIR function; the same function in another
model (or another region) is the same task, so its records are reused. A ledger of trials
spent per task lets a later run, with the same or a larger budget, continue where an earlier
one stopped instead of starting again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Tuning"]

_log = logging.getLogger("tvmbridge")

DEFAULT_DATABASE = "~/.cache/tvmbridge/tuning"
# Tasks with less work than this are left to the default schedule: tuning cannot pay there.
_MIN_TASK_FLOPS = 1e5
_MIN_TRIALS_PER_TASK = 16
_TRIALS_PER_BATCH = 16
_TRIALS_PER_CALL = 64

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$")
_SECONDS_PER_UNIT = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def parse_duration(value) -> float | None:
    """Seconds from 90, "90s", "30min", "1.5h" (None: no limit)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"tvmbridge.Tuning: time_budget {value!r} is not a duration; "
                             "expected seconds or a string like '90s', '30min', '2h'")
        seconds = float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"tvmbridge.Tuning: time_budget must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Tuning:
    """How to auto-tune: ``trials`` measured candidates in all (split over the tasks by
    their share of the work; 0 applies existing records only), the ``database`` folder, an
    optional wall-clock ``time_budget`` (seconds or "30min"), and whether to show
    ``progress`` on stderr."""

    trials: int = 2000
    database: str | os.PathLike = DEFAULT_DATABASE
    time_budget: float | str | None = None
    progress: bool = True

    def __post_init__(self):
        if not isinstance(self.trials, int) or isinstance(self.trials, bool) or self.trials < 0:
            raise ValueError(f"tvmbridge.Tuning: trials must be an int >= 0, got {self.trials!r}")
        object.__setattr__(self, "time_budget", parse_duration(self.time_budget))

    def folder(self, target) -> Path:
        """The database folder for `target`."""
        description = str(target)
        key = hashlib.sha256(description.encode()).hexdigest()[:16]
        return Path(os.path.expanduser(os.fspath(self.database))) / key


class _Ledger:
    """Trials spent per task (by structural hash), kept beside MetaSchedule's records."""

    def __init__(self, path: Path):
        self.path = path
        self.spent: dict[str, int] = {}
        if path.exists():
            try:
                self.spent = {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
            except (ValueError, AttributeError) as error:
                raise ValueError(f"tvmbridge: the tuning ledger {path} is damaged ({error}); "
                                 "delete it to start counting afresh") from error

    def add(self, key: str, trials: int) -> None:
        self.spent[key] = self.spent.get(key, 0) + trials
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.spent, indent=1, sort_keys=True))
        os.replace(partial, self.path)  # readers never see half a file


class _Progress:
    """One status line on stderr: tasks done, trials, best latency of the task, ETA."""

    def __init__(self, enabled: bool, tasks: int, trials: int):
        self.enabled = enabled
        self.tasks = tasks
        self.trials = trials
        self.trials_done = 0
        self.started = time.perf_counter()
        self.interactive = enabled and sys.stderr.isatty()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def seconds_per_trial(self) -> float | None:
        return self.elapsed() / self.trials_done if self.trials_done else None

    def show(self, task_index: int, name: str, best_seconds: float | None, final=False,
             note: str = ""):
        if not self.enabled:
            return
        per_trial = self.seconds_per_trial()
        eta = "?" if per_trial is None else _clock(per_trial * (self.trials - self.trials_done))
        best = "-" if best_seconds is None else f"{best_seconds * 1e3:.3f} ms"
        line = (f"tvmbridge tuning: task {task_index}/{self.tasks} {name}: best {best}{note}; "
                f"{self.trials_done}/{self.trials} trials, {_clock(self.elapsed())} elapsed, "
                f"ETA {eta}")
        if self.interactive:
            print("\r" + line.ljust(120), end="\n" if final else "", file=sys.stderr, flush=True)
        elif final:
            print(line, file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _quiet_meta_schedule() -> None:
    """MetaSchedule logs a table per batch; its files in the database keep that. Its console
    handler takes the package logger's level each time tuning starts (and the level is then
    reset to DEBUG), so this is called before every tuning call."""
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)


def _has_symbolic_shapes(task_mod) -> bool:
    """Whether a task's TIR function has buffers of symbolic extents (tt.Input ranges):
    MetaSchedule measures candidates on buffers of fixed shapes only."""
    import tvm

    return any(not isinstance(extent, tvm.tirx.IntImm)
               for func in task_mod.functions.values() if isinstance(func, tvm.tirx.PrimFunc)
               for param in func.params if hasattr(param.ty, "shape")
               for extent in param.ty.shape)


def specialise_at(func, extents: dict[str, int]):
    """`func` with its buffers' symbolic extents at `extents` (by symbol name), and the
    symbols it fixed (name to Var); None when `func` has no symbolic extents or a symbol has
    no value in `extents`."""
    from tvm import tirx
    from tvm.tirx.analysis import undefined_vars

    from .schedule import extent_at

    symbols, static_buffers = {}, {}
    for param in func.params:
        shape = getattr(param.ty, "shape", None)
        if shape is None or all(isinstance(extent, tirx.IntImm) for extent in shape):
            continue
        values = [extent_at(extent, extents) for extent in shape]
        if any(value is None for value in values):
            return None
        symbols.update({var.name: var for extent in shape for var in undefined_vars(extent)})
        # Each extent keeps its dtype: Specialize binds symbols only where the types agree.
        static_buffers[param] = tirx.decl_buffer(
            [tirx.IntImm(extent.ty.dtype, value) for extent, value in zip(shape, values)],
            param.ty.dtype, param.name)
    if not static_buffers:
        return None
    return func.specialize(static_buffers), symbols


def _at_opt_shape(task, opt_extents: dict[str, int]):
    """A task over symbolic extents as the task of its function at the opt shape, which
    MetaSchedule can measure (the task itself where it has no symbols, or one without an opt
    value)."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    specialised = specialise_at(task.dispatched[0]["main"], opt_extents)
    if specialised is None:
        return task
    static = tvm.IRModule({"main": specialised[0]})
    return ms.ExtractedTask(task.task_name, static, task.target, [static], task.weight)


def dispatch_tuned_at_opt(mod, database, target, opt_extents: dict[str, int]):
    """Each PrimFunc of `mod` over symbolic extents whose function at the opt shape has a
    tuning record becomes one function that runs the tuned code when the call's extents are
    the opt shape's, and the default schedule otherwise (MetaSchedule measures fixed shapes
    only, so its schedules hold for the shape they were tuned at)."""
    import functools

    import tvm
    from tvm import tirx

    from .schedule import default_schedule

    if not opt_extents:
        return mod
    # MetaSchedule's workload key: extract_tasks and MetaScheduleApplyDatabase use it too.
    normalize = tvm.get_global_func("tvm.s_tir.meta_schedule.normalize_mod")
    for global_var, func in list(mod.functions.items()):
        if not isinstance(func, tirx.PrimFunc) or func.attrs.get("tirx.is_scheduled", False):
            continue
        # Keyed as extract_tasks keys the task that tuning specialised.
        workload = normalize(func.with_attr("global_symbol", "main"))["main"]
        specialised = specialise_at(workload, opt_extents)
        if specialised is None:
            continue
        static, symbols = specialised
        tuned = database.query_schedule(normalize(static), target, workload_name="main")
        if tuned is None:
            continue
        tuned = tuned.mod["main"]
        default = default_schedule(func, target, opt_extents)
        fallback = default.mod["main"] if default is not None else func
        at_opt = [var == tirx.IntImm(var.ty.dtype, opt_extents[name])
                  for name, var in sorted(symbols.items())]
        # The tuned code's buffers are views of the same arguments, at the opt shape.
        views = [tirx.DeclBuffer(view, data=param)
                 for param, view in zip(func.params, tuned.params) if hasattr(param.ty, "shape")]
        body = tirx.IfThenElse(functools.reduce(tirx.And, at_opt),
                               tirx.SeqStmt([*views, tuned.body]), fallback.body)
        mod[global_var] = fallback.with_body(body).with_attr("tirx.is_scheduled", True)
        _log.info("tvmbridge: %s runs its tuned schedule at %s, its default elsewhere",
                  global_var.name_hint,
                  ", ".join(f"{name}={opt_extents[name]}" for name in sorted(symbols)))
    return mod


def _plan(tasks, flops, budget: int, symbolic: list[bool]) -> list[int]:
    """Trials per task: by share of the work, at least a couple of batches, whole batches;
    none for tasks too small to gain, nor for symbolic ones."""
    work = [f * t.weight for f, t in zip(flops, tasks)]
    total = sum(w for w, f, s in zip(work, flops, symbolic)
                if f >= _MIN_TASK_FLOPS and not s) or 1.0
    plan = []
    for w, f, s in zip(work, flops, symbolic):
        if f < _MIN_TASK_FLOPS or s or budget == 0:
            plan.append(0)
            continue
        share = max(_MIN_TRIALS_PER_TASK, budget * w / total)
        plan.append(int(math.ceil(share / _TRIALS_PER_BATCH)) * _TRIALS_PER_BATCH)
    return plan


def _local_builder(ms):
    """MetaSchedule's LocalBuilder without the `import tvm.s_tir.tensor_intrin` of its default
    build function. That import parses every target's tensor intrinsics, 30 s on a 2-core
    Xeon, in each new worker, and LocalBuilder starts new workers for every batch: every
    build ran past its 30 s timeout and no trial was ever measured. Tensorized schedules
    carry their intrinsics' code already; building them needs no registrations."""

    def build(mod, target, _params):
        # Nested, so that cloudpickle sends it by value: the workers import TVM, not tvmbridge.
        from tvm.driver import build as tvm_build
        from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

        return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod),
                         target=target)

    return ms.builder.LocalBuilder(f_build=build)


def _record_default_schedule(ms, database, task_mod, target, builder, runner) -> float | None:
    """Measures tvmbridge's default schedule of the task and commits it as a tuning record,
    so the database's best is never worse than what an untuned build would run. Returns its
    latency in seconds (None when it has no default schedule or the measurement failed)."""
    from .schedule import default_schedule

    scheduled = default_schedule(task_mod["main"], target)
    if scheduled is None:
        return None
    (built,) = builder.build([ms.builder.BuilderInput(scheduled.mod, target)])
    if built.error_msg is not None:
        return None
    args_info = ms.arg_info.ArgInfo.from_prim_func(task_mod["main"])
    (future,) = runner.run([ms.runner.RunnerInput(built.artifact_path, "cpu", args_info)])
    result = future.result()
    if result.error_msg is not None or not result.run_secs:
        return None
    run_secs = [float(s) for s in result.run_secs]
    workload = database.commit_workload(task_mod)
    database.commit_tuning_record(
        ms.database.TuningRecord(scheduled.trace, workload, run_secs, target, args_info))
    return sum(run_secs) / len(run_secs)


def tune(mod, target, tuning: Tuning, precision: str = "fp32"):
    """Tunes the fused TIR functions of Relax module `mod` for `target` (built at
    `precision`); returns the MetaSchedule database holding the records (old and new)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops
    import tvm_ffi

    from .pipeline import fuse, uses_onednn_convolutions
    from .schedule import opt_extents_of

    folder = tuning.folder(target)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "target.json").write_text(str(target) + "\n")
    database = ms.database.JSONDatabase(work_dir=str(folder))
    ledger = _Ledger(folder / "trials.json")

    opt_extents = opt_extents_of(mod)
    fused = fuse(mod, target, precision,
                 onednn_convolutions=uses_onednn_convolutions(precision, mod, tuning=True))
    extracted = ms.relax_integration.extract_tasks(fused, target)
    tasks = [_at_opt_shape(task, opt_extents) for task in extracted]
    flops = [float(estimate_tir_flops(task.dispatched[0])) for task in tasks]
    order = sorted(range(len(tasks)), key=lambda i: -flops[i] * tasks[i].weight)
    symbolic = [_has_symbolic_shapes(task.dispatched[0]) for task in tasks]
    plan = _plan(tasks, flops, tuning.trials, symbolic)
    if tuning.progress:
        at_opt = sum(1 for task, original in zip(tasks, extracted) if task is not original)
        if at_opt:
            print(f"tvmbridge tuning: {at_opt} of {len(tasks)} tasks have symbolic shapes "
                  "(tt.Input ranges); their records are made and used at the opt shape, and "
                  "calls at other shapes run their default schedules", file=sys.stderr)
        if any(symbolic):
            print(f"tvmbridge tuning: {sum(symbolic)} of {len(tasks)} tasks have symbolic "
                  "shapes without an opt value and keep their default schedules",
                  file=sys.stderr)
    keys = [str(tvm_ffi.structural_hash(task.dispatched[0])) for task in tasks]
    remaining = {i: max(0, plan[i] - ledger.spent.get(keys[i], 0)) for i in order}
    to_tune = [i for i in order if remaining[i] > 0]
    progress = _Progress(tuning.progress, len(to_tune), sum(remaining[i] for i in to_tune))
    if tuning.progress and not to_tune and tuning.trials and any(plan):
        print(f"tvmbridge tuning: all {sum(1 for p in plan if p)} tasks worth tuning already "
              f"tuned in {folder}", file=sys.stderr)

    best: dict[int, float] = {}

    @derived_object
    class _ShowProgress(ms.measure_callback.PyMeasureCallback):
        def __init__(self, position: int, task: int):
            self.position = position
            self.task = task

        def apply(self, _scheduler, _task_id, _candidates, _builds, runs):
            for run in runs:
                if run.error_msg is None and run.run_secs:
                    seconds = sum(float(s) for s in run.run_secs) / len(run.run_secs)
                    best[self.task] = min(best.get(self.task, math.inf), seconds)
            progress.trials_done += len(runs)
            progress.show(self.position, tasks[self.task].task_name, best.get(self.task))

    cores = os.cpu_count() or 1
    runner = ms.runner.LocalRunner(
        evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50))
    def out_of_time() -> bool:
        return tuning.time_budget is not None and progress.elapsed() >= tuning.time_budget

    for position, i in enumerate(to_tune, start=1):
        if out_of_time():
            break
        _quiet_meta_schedule()
        builder = _local_builder(ms)
        default_seconds = None
        if ledger.spent.get(keys[i], 0) == 0:  # recorded once, with the task's first trials
            default_seconds = _record_default_schedule(ms, database, tasks[i].dispatched[0],
                                                       target, builder, runner)
            if default_seconds is not None:
                best[i] = default_seconds
        # In chunks, so that the time budget can stop tuning inside a task; each chunk's
        # search starts from the records the earlier ones left in the database.
        left = remaining[i]
        while left > 0 and not out_of_time():
            trials = min(left, _TRIALS_PER_CALL)
            contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                [tasks[i]], work_dir=str(folder), num_threads=cores)
            ms.tune_tasks(
                tasks=contexts, task_weights=weights, work_dir=str(folder),
                max_trials_global=trials, max_trials_per_task=trials,
                num_trials_per_iter=_TRIALS_PER_BATCH, builder=builder,
                runner=runner, database=database,
                measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                                   _ShowProgress(position, i)],
                task_scheduler="round-robin")
            ledger.add(keys[i], trials)
            left -= trials
        note = "" if default_seconds is None else f" (default {default_seconds * 1e3:.3f} ms)"
        progress.show(position, tasks[i].task_name, best.get(i), final=True, note=note)
    if out_of_time():
        untouched = sum(1 for i in to_tune if ledger.spent.get(keys[i], 0) < plan[i])
        print(f"tvmbridge tuning: time budget reached; {untouched} task(s) not fully tuned "
              "(a later run with the same database continues)", file=sys.stderr)
    return database
