"""One artifact for a range of shapes against one static compile per shape (issue 22).

A model is compiled once with tt.Input(min_shape, opt_shape, max_shape), and once per size
with a fixed shape; at each size the two run interleaved in one loop (medians and
interquartile ranges), with eager PyTorch as a third contender. Compile times too, and the
ranged module's largest difference from eager PyTorch at ten sizes spread over its range.

    python bench/symbolic_shapes.py --model resnet18 [--sizes 1 4 8] [--repeat 15] [--out FILE]
    python bench/symbolic_shapes.py --model bert --sizes 1x8 1x128 1x512 8x128 [--out FILE]

resnet18 sizes are batches (images 3x224x224, range 1..max); bert (BERT-base) and distilbert
(DistilBERT-base) sizes are BATCHxLENGTH (token ids and a mask, range 1..8 x 1..512, opt
1x128). Random weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from typing import Callable

import torch

import tvmbridge.torch as tt
from tvmbridge import benchmark

MAX_BATCH, MAX_LENGTH, OPT_LENGTH = 8, 512, 128


@dataclasses.dataclass
class Subject:
    title: str
    model: torch.nn.Module
    traced: torch.jit.ScriptModule
    ranged_inputs: list  # tt.Input per model input
    inputs_at: Callable[[tuple[int, ...]], tuple]  # a size -> example inputs
    spread: list  # ten sizes over the range, for the accuracy sweep


class LastHiddenState(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, ids, mask):
        return self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state


def resnet18(max_batch: int) -> Subject:
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224))
    image = (3, 224, 224)
    ranged = [tt.Input(min_shape=(1, *image), opt_shape=(1, *image),
                       max_shape=(max_batch, *image))]
    spread = sorted({max(1, round(max_batch * i / 9)) for i in range(10)})
    return Subject(f"ResNet-18, one artifact for batch 1..{max_batch} (opt 1)", model, traced,
                   ranged, lambda size: (torch.randn(size[0], *image),),
                   [(batch,) for batch in spread])


def encoder(name: str) -> Subject:
    import transformers

    if name == "bert":
        title, model = "BERT-base", transformers.BertModel(transformers.BertConfig())
    else:
        title, model = "DistilBERT-base", transformers.DistilBertModel(
            transformers.DistilBertConfig())
    model = LastHiddenState(model.eval()).eval()
    vocabulary = model.encoder.config.vocab_size

    def inputs_at(size):
        batch, length = size
        ids = torch.randint(0, vocabulary, (batch, length))
        mask = torch.ones(batch, length, dtype=torch.int64)
        mask[0, length // 2 + 1:] = 0  # padding in the first sequence
        return ids, mask

    with torch.no_grad():
        traced = torch.jit.trace(model, inputs_at((1, OPT_LENGTH)))
    tokens = tt.Input(min_shape=(1, 1), opt_shape=(1, OPT_LENGTH),
                      max_shape=(MAX_BATCH, MAX_LENGTH), dtype=torch.int64)
    spread = [(1, 1), (1, 7), (1, 64), (1, 128), (2, 33), (3, 200), (4, 77), (1, 512), (8, 128),
              (8, 512)]
    return Subject(f"{title}, one artifact for batch 1..{MAX_BATCH} x length 1..{MAX_LENGTH} "
                   f"(opt 1x{OPT_LENGTH})", model, traced, [tokens, tokens], inputs_at, spread)


def parse_size(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("x"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["resnet18", "bert", "distilbert"],
                        default="resnet18")
    parser.add_argument("--sizes", nargs="+", default=None,
                        help="batches (resnet18) or BATCHxLENGTH (bert, distilbert)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    default_sizes = {"resnet18": ["1", "4", "8"]}.get(args.model, ["1x8", "1x128", "1x512",
                                                                    "8x128"])
    sizes = [parse_size(text) for text in (args.sizes or default_sizes)]
    subject = (resnet18(max(size[0] for size in sizes)) if args.model == "resnet18"
               else encoder(args.model))

    started = time.perf_counter()
    ranged = tt.compile(subject.traced, subject.ranged_inputs, never_slower=False)
    ranged_compile_s = time.perf_counter() - started
    differences = []
    with torch.no_grad():
        for size in subject.spread:
            inputs = subject.inputs_at(size)
            got, want = ranged(*inputs), subject.model(*inputs)
            assert torch.equal(got.isnan(), want.isnan()), f"NaN differs at {size}"
            differences.append(f"{'x'.join(map(str, size))}: "
                               f"{(got - want).abs().max().item():.1e}")
    header = [f"# {subject.title}, against static compiles", "",
              f"CPU: {benchmark.cpu_model()}; flags: {' '.join(benchmark.cpu_flags())}; "
              f"{torch.get_num_threads()} threads",
              f"Compile: ranged {ranged_compile_s:.1f} s; ranged module: "
              f"{tt.report(ranged).summary()}",
              f"Ranged vs eager, max abs difference (NaN masks equal) at "
              f"{len(differences)} sizes: {'; '.join(differences)}", "",
              "| size | static ms (IQR) | ranged ms (IQR) | ranged / static | eager ms | "
              "ranged / eager | static compile s |",
              "|---:|---:|---:|---:|---:|---:|---:|"]

    def rows_of(size: tuple[int, ...]) -> list[str]:
        inputs = subject.inputs_at(size)
        started = time.perf_counter()
        static = tt.compile(subject.traced, list(inputs), never_slower=False)
        static_compile_s = time.perf_counter() - started
        with torch.no_grad():
            timings = benchmark.measure_interleaved(
                {"static": lambda: static(*inputs), "ranged": lambda: ranged(*inputs),
                 "eager": lambda: subject.model(*inputs)},
                warmup=3, repeat=args.repeat, pause_s=0.01)
        s, r, e = timings["static"], timings["ranged"], timings["eager"]
        return [f"| {'x'.join(map(str, size))} | {s.median_ms:.2f} ({s.iqr}) | "
                f"{r.median_ms:.2f} ({r.iqr}) | {r.median_ms / s.median_ms:.2f}x | "
                f"{e.median_ms:.2f} | {r.median_ms / e.median_ms:.2f}x | "
                f"{static_compile_s:.1f} |"]

    benchmark.print_table(header, rows_of, sizes, args.out)


if __name__ == "__main__":
    main()
