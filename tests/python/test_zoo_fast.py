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
