"""The fast slice of the generated differential tests (tests/python/differential.py): seeded
cases per family, each checked against PyTorch; `make fuzz-ops` runs many more."""

import pytest

import differential

CASES_PER_FAMILY = 50


@pytest.mark.parametrize("family", sorted(differential.FAMILIES))
def test_family_agrees_with_pytorch(family):
    result = differential.run_cases(CASES_PER_FAMILY, seed=0, families=(family,))[family]
    report = "\n".join(f"{description}\n  {problem}" for description, problem in result["failures"])
    assert not result["failures"], f"{len(result['failures'])} disagreements:\n{report}"
