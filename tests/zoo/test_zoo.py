"""make test-zoo: every zoo model, each way it is taken (traced, scripted), compiled with no
fallback and against PyTorch. Writes the table of results to $TVMBRIDGE_ZOO_TABLE (default
build/zoo.md)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check import check  # noqa: E402
from models import ZOO  # noqa: E402

TABLE = Path(os.environ.get("TVMBRIDGE_ZOO_TABLE", Path(__file__).resolve().parents[2] / "build" / "zoo.md"))
CASES = [pytest.param(name, way, id=f"{name}-{way}",
                      marks=[pytest.mark.xfail(strict=True, reason=spec.known_gaps[way])]
                      if way in spec.known_gaps else [])
         for name, spec in ZOO.items() for way in spec.ways]


def _write(rows):
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    lines = ["| model | way | converted fully | nodes left to PyTorch | max abs diff "
             "| max abs output | compile s |", "|---|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.model} | {r.way} | {'yes' if r.fully_converted else 'no'} | {r.torch_nodes} "
              f"| {r.max_abs_diff:.2e} | {r.max_abs_output:.3g} | {r.compile_s:.1f} |"
              for r in rows]
    TABLE.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def table():
    return []


@pytest.mark.parametrize("name,way", CASES)
def test_zoo_model(name, way, table):
    result = check(name, way)
    table.append(result)
    _write(table)  # after every model, so a partial run leaves its table
    assert result.fully_converted
