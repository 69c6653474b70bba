"""The fast part of the model zoo (tests/zoo): one model of each kind, traced and scripted,
compiled with no fallback and against PyTorch. `make test-zoo` runs the whole zoo."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "zoo"))
from check import check  # noqa: E402
from models import FAST, ZOO  # noqa: E402

# Ways with a known gap are checked (as expected failures) by the whole zoo.
CASES = [(name, way) for name in FAST for way in ZOO[name].ways
         if way not in ZOO[name].known_gaps]


@pytest.mark.parametrize("name,way", CASES, ids=[f"{n}-{w}" for n, w in CASES])
def test_fast_zoo_model(name, way):
    assert check(name, way).fully_converted


def test_zoo_timing_writes_its_table_and_geometric_means(tmp_path):
    """bench/zoo.py (make bench-zoo, and make test-zoo after the zoo's tests) on one small
    model: a row with every contender timed, bf16's accuracy, and the geometric means."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import zoo as zoo_timing

    table = tmp_path / "zoo_speed.md"
    assert zoo_timing.main(["--models", "rnn_relu", "--repeat", "2", "--out", str(table)]) == 0
    text = table.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| rnn_relu |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert len(cells) == 12 and "failed" not in row
    assert float(cells[10]) >= 0.999  # bf16 cosine against float32 eager
    for contender in ("fp32 default", "fp32 TVM alone", "bf16 default", "bf16 TVM alone"):
        means = [line for line in text.splitlines() if line.startswith(f"| {contender} |")]
        assert len(means) == 1 and float(means[0].split("|")[2].strip().rstrip("x")) > 0
    assert zoo_timing.geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
