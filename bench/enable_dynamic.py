"""enable() over a run of varying sequence lengths: one compile per shape against
enable(dynamic=True)'s versions over ranges (issue 22).

A traced transformers BERT (random weights) serves a run of requests whose lengths are drawn
at random. Under enable() its groups compile once per length; under enable(dynamic=True) they
compile their first length exactly and then one version over a range of lengths, widened when
a request falls outside it. First the cold run (each contender alone: compiles included, with
their count and the memory they took), then the warm latency of both and of eager PyTorch at a
few lengths of the run, interleaved (medians and interquartile ranges).

    python bench/enable_dynamic.py [--layers 12] [--requests 16] [--max-length 128]
                                   [--repeat 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from pathlib import Path

import torch

import tvmbridge.torch as tt
from tvmbridge import benchmark


class LastHiddenState(torch.nn.Module):
    def __init__(self, layers: int):
        super().__init__()
        import transformers

        config = transformers.BertConfig(num_hidden_layers=layers)  # BERT-base otherwise
        self.bert = transformers.BertModel(config).eval()

    def forward(self, ids, mask):
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state


def request(length: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 30522, (1, length), generator=generator),
            torch.ones(1, length, dtype=torch.int64))


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(model, dynamic: bool, lengths: list[int]):
    """Traces `model`, enables groups, serves `lengths`; returns the traced module and the
    cold run's seconds, compiles and memory growth."""
    tt.enable(cache_dir=None, dynamic=dynamic)
    traced = torch.jit.trace(model, request(lengths[0], 0), strict=False)
    before, memory = tt.enable_statistics(), resident_mib()
    start = time.perf_counter()
    with torch.no_grad():
        for seed, length in enumerate(lengths):
            traced(*request(length, seed))
    seconds = time.perf_counter() - start
    after = tt.enable_statistics()
    tt.disable()
    return traced, {"seconds": seconds, "compiles": after["compiles"] - before["compiles"],
                    "symbolic": after["symbolic_compiles"] - before["symbolic_compiles"],
                    "memory_mib": resident_mib() - memory}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(args.seed)
    model = LastHiddenState(args.layers)
    draw = random.Random(args.seed)
    lengths = [draw.randint(1, args.max_length) for _ in range(args.requests)]

    cold = {}
    modules = {}
    for name, dynamic in (("per shape", False), ("dynamic=True", True)):
        modules[name], cold[name] = serve(model, dynamic, lengths)
        print(name, cold[name], flush=True)

    header = [
        f"# enable() over {args.requests} requests of lengths 1..{args.max_length} "
        f"(BERT, {args.layers} layers, batch 1)", "",
        f"CPU: {benchmark.cpu_model()}; flags: {' '.join(benchmark.cpu_flags())}; "
        f"torch {torch.__version__}; {torch.get_num_threads()} threads. Lengths, in order: "
        f"{', '.join(map(str, lengths))} ({len(set(lengths))} distinct). Random weights.", "",
        "## Cold run (each contender alone, compiles included)", "",
        "| contender | seconds | compiles | of which over ranges | memory growth MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    header += [f"| {name} | {c['seconds']:.1f} | {c['compiles']} | {c['symbolic']} | "
               f"{c['memory_mib']:.0f} |" for name, c in cold.items()]
    header += ["", f"## Warm latency, interleaved ({args.repeat} rounds), medians in ms", "",
               "| length | eager | per shape | dynamic=True | dynamic / per shape | "
               "dynamic / eager | IQR dynamic |", "|---:|---:|---:|---:|---:|---:|---|"]
    ordered = sorted(set(lengths))
    warm_lengths = sorted({ordered[0], ordered[len(ordered) // 2], ordered[-1]})

    def rows_of(length: int) -> list[str]:
        inputs = request(length, 1)
        with torch.no_grad():
            runs = {"eager": lambda: model(*inputs),
                    "per shape": lambda: modules["per shape"](*inputs),
                    "dynamic": lambda: modules["dynamic=True"](*inputs)}
            t = benchmark.measure_interleaved(runs, warmup=2, repeat=args.repeat)
        dynamic, static, eager = (t[k].median_ms for k in ("dynamic", "per shape", "eager"))
        return [f"| {length} | {eager:.1f} | {static:.1f} | {dynamic:.1f} | "
                f"{dynamic / static:.2f}x | {dynamic / eager:.2f}x | {t['dynamic'].iqr} |"]

    benchmark.print_table(header, rows_of, warm_lengths, args.out)


if __name__ == "__main__":
    main()
