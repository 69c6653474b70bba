"""The tvmbridge command line (also `python -m tvmbridge`).

    tvmbridge report model.pt --input 1x3x224x224:float32 [--min-block-size N]
    tvmbridge compile model.pt --input 1x3x224x224:float32 -o model_tvm.pt
    tvmbridge compile model.pt --input 1..8x3x224x224:float32 -o model_tvm.pt   (batch 1 to 8)
    tvmbridge tune model.pt --input 1x3x224x224 --trials 2000 [--time-budget 30min] -o out.pt
    tvmbridge coverage [--against docs/coverage/old-tvm-frontend-ops.txt]
"""

from __future__ import annotations

import argparse
import sys


def parse_input(text: str):
    """'1x3x224x224:float32' -> tvmbridge.torch.Input (dtype defaults to float32). A dim
    written MIN..MAX (opt at MIN) or MIN..OPT..MAX makes a range of shapes:
    '1..8x3x224x224' compiles one module for batches 1 to 8."""
    import torch

    from .torch import Input

    shape_text, _, dtype_text = text.partition(":")
    try:
        dims = [tuple(int(part) for part in d.split("..")) for d in shape_text.split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape in '{text}': expected like 1x3x224x224 "
                                         "or 1..8x3x224x224")
    if any(len(d) > 3 for d in dims):
        raise argparse.ArgumentTypeError(f"bad range in '{text}': expected MIN..MAX or "
                                         "MIN..OPT..MAX")
    dtype = getattr(torch, dtype_text or "float32", None)
    if not isinstance(dtype, torch.dtype):
        raise argparse.ArgumentTypeError(f"unknown dtype '{dtype_text}' in '{text}'")
    try:
        if all(len(d) == 1 for d in dims):
            return Input(tuple(d[0] for d in dims), dtype)
        ranges = [(d[0], d[0], d[0]) if len(d) == 1 else (d[0], d[0], d[1]) if len(d) == 2
                  else d for d in dims]
        return Input(min_shape=tuple(r[0] for r in ranges), opt_shape=tuple(r[1] for r in ranges),
                     max_shape=tuple(r[2] for r in ranges), dtype=dtype)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"'{text}': {error}")


def _add_partition_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a TorchScript .pt file")
    parser.add_argument("--input", action="append", required=True, type=parse_input,
                        help="SHAPE:DTYPE of one forward argument, e.g. 1x3x224x224:float32; "
                             "a dim MIN..MAX (or MIN..OPT..MAX) compiles for a range of shapes")
    parser.add_argument("--min-block-size", type=int, default=3)
    parser.add_argument("--torch-executed-op", action="append", default=[],
                        help="an op to leave to PyTorch, e.g. aten::topk")
    parser.add_argument("--torch-executed-module", action="append", default=[])


def read_op_list(path: str) -> list[str]:
    """Op names, one per line; blank lines and '#' comments ignored."""
    with open(path) as listing:
        return [line.strip() for line in listing if line.strip() and not line.startswith("#")]


def coverage(against: str | None) -> str:
    """The ops the frontend converts, or how much of the list in `against` it converts."""
    from .torch import supported_ops

    converted = supported_ops()
    if against is None:
        return "\n".join([f"{len(converted)} ops converted:"] + converted)
    wanted = read_op_list(against)
    known = set(converted)
    missing = [op for op in wanted if op not in known]
    lines = [f"{len(wanted) - len(missing)} of the {len(wanted)} ops in {against} are converted "
             f"({len(converted)} converted in all); missing {len(missing)}:"]
    return "\n".join(lines + missing)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tvmbridge", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="which node runs where (TVM or PyTorch), and why")
    _add_partition_options(report)
    compile_cmd = commands.add_parser("compile", help="compile a .pt with TVM into a .pt")
    _add_partition_options(compile_cmd)
    compile_cmd.add_argument("-o", "--output", required=True)
    tune = commands.add_parser(
        "tune", help="auto-tune with MetaSchedule (resumable), then compile into a .pt")
    _add_partition_options(tune)
    tune.add_argument("--trials", type=int, default=2000, help="measured candidates in all")
    tune.add_argument("--time-budget", default=None, help="wall-clock limit, e.g. 30min")
    tune.add_argument("--database", default=None,
                      help="tuning records folder (default ~/.cache/tvmbridge/tuning)")
    tune.add_argument("-o", "--output", help="where to write the compiled .pt (optional)")
    for command in (compile_cmd, tune):
        command.add_argument("--keep-slower-regions", action="store_true",
                             help="keep TVM regions even where PyTorch measured faster")
        command.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                             help="bf16: matrix products in bfloat16 with float32 "
                                  "accumulation (AMX / AVX512-BF16)")
    coverage_cmd = commands.add_parser("coverage", help="the ops the frontend converts")
    coverage_cmd.add_argument("--against", metavar="LIST",
                              help="a file of op names, one per line: say which are missing "
                                   "(docs/coverage/old-tvm-frontend-ops.txt: TVM's deleted "
                                   "frontend)")
    args = parser.parse_args(argv)
    if args.command == "coverage":
        try:
            print(coverage(args.against))
        except OSError as error:
            print(f"tvmbridge: {error}", file=sys.stderr)
            return 1
        return 0

    import torch

    from . import torch as tt

    options = dict(min_block_size=args.min_block_size,
                   torch_executed_ops=args.torch_executed_op,
                   torch_executed_modules=args.torch_executed_module)
    try:
        if args.command == "report":
            print(tt.explain(args.model, args.input, **options))
            return 0
        options["never_slower"] = not args.keep_slower_regions
        options["precision"] = args.precision
        if args.command == "tune":
            database = args.database or tt.Tuning.database
            options["tuning"] = tt.Tuning(trials=args.trials, database=database,
                                          time_budget=args.time_budget)
        compiled = tt.compile(args.model, args.input, **options)
        if args.output:
            torch.jit.save(compiled, args.output)
            print(f"wrote {args.output}")
    except (ValueError, TypeError, NotImplementedError, RuntimeError, OSError) as error:
        print(f"tvmbridge: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
