"""The command line: tvmbridge report / compile."""

import subprocess

import torch

from conftest import BUILD, SmallNet, randomize_, run_python
from test_partition import DetectionHead


def _compile_small_net(tmp_path, input_flag: str):
    """SmallNet saved, compiled by `tvmbridge compile --input <input_flag>`: (model, output)."""
    model = randomize_(SmallNet())
    small = tmp_path / "small.pt"
    torch.jit.save(torch.jit.script(model), str(small))
    out = tmp_path / "small_tvm.pt"
    result = run_python("import sys; from tvmbridge.cli import main; sys.exit(main())",
                        "compile", str(small), "--input", input_flag, "-o", str(out),
                        "--keep-slower-regions")
    assert result.returncode == 0, result.stderr
    import tvmbridge  # noqa: F401  (registers the runtime class for torch.jit.load)
    return model, out


def test_report_and_compile(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "head.pt"
    torch.jit.save(torch.jit.script(randomize_(DetectionHead())), str(path))
    result = run_python("import sys; from tvmbridge.cli import main; sys.exit(main())",
                        "report", str(path), "--input", "1x3x16x16:float32")
    assert result.returncode == 0, result.stderr
    assert "TVM block 0" in result.stdout and "aten::topk" in result.stdout

    model, out = _compile_small_net(tmp_path, "2x3x16x16")

    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(out))(x), model(x), rtol=1e-4, atol=1e-4)


def test_bad_input_flag_is_a_usage_error(tmp_path):
    result = run_python("import sys; from tvmbridge.cli import main; sys.exit(main())",
                        "report", "m.pt", "--input", "1xbad")
    assert result.returncode == 2
    assert "bad shape" in result.stderr


def test_missing_file_is_reported(tmp_path):
    result = run_python("import sys; from tvmbridge.cli import main; sys.exit(main())",
                        "report", str(tmp_path / "none.pt"), "--input", "1x3")
    assert result.returncode == 1
    assert "none.pt" in result.stderr


def test_coverage_lists_converted_ops_and_compares_with_a_list(tmp_path):
    listing = tmp_path / "ops.txt"
    listing.write_text("# a comment\naten::conv2d\naten::no_such_op\n\naten::relu\n")
    cli = "import sys; from tvmbridge.cli import main; sys.exit(main())"
    everything = run_python(cli, "coverage")
    assert everything.returncode == 0, everything.stderr
    count, *ops = everything.stdout.split("\n")
    ops = [op for op in ops if op]
    assert count == f"{len(ops)} ops converted:" and "aten::conv2d" in ops
    assert ops == sorted(ops)
    compared = run_python(cli, "coverage", "--against", str(listing))
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.splitlines() == [
        f"2 of the 3 ops in {listing} are converted ({len(ops)} converted in all); missing 1:",
        "aten::no_such_op"]
    missing_file = run_python(cli, "coverage", "--against", str(tmp_path / "none.txt"))
    assert missing_file.returncode == 1 and "none.txt" in missing_file.stderr


def test_compile_for_a_range_of_batches(tmp_path):
    torch.manual_seed(0)
    model, out = _compile_small_net(tmp_path, "1..4x3x16x16")

    loaded = torch.jit.load(str(out))
    with torch.no_grad():
        for batch in (1, 3, 4):
            x = torch.randn(batch, 3, 16, 16)
            torch.testing.assert_close(loaded(x), model(x), rtol=1e-4, atol=1e-4)
    # From C++ too: any batch in range runs, one past it is refused.
    runner = str(BUILD / "tvmbridge-run")
    ran = subprocess.run([runner, str(out), "--input", "3x3x16x16:float32"], capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0 and "shape [3, " in ran.stdout, ran.stderr
    refused = subprocess.run([runner, str(out), "--input", "5x3x16x16:float32"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "compiled for 1..4" in refused.stderr


def test_ranged_input_flags_parse():
    import argparse

    import pytest

    from tvmbridge.cli import parse_input

    ranged = parse_input("1..2..8x3x224x224:float32")
    assert (ranged.min_shape, ranged.opt_shape, ranged.max_shape) == (
        (1, 3, 224, 224), (2, 3, 224, 224), (8, 3, 224, 224))
    assert parse_input("1..8x128:int64").opt_shape == (1, 128)
    for bad, message in [("8..1x3", "min_shape <= opt_shape"), ("1..2..3..4x3", "bad range")]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse_input(bad)
