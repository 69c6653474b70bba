"""The command line: tvmbridge report / compile."""

import torch

from conftest import SmallNet, randomize_, run_python
from test_partition import DetectionHead


def test_report_and_compile(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "head.pt"
    torch.jit.save(torch.jit.script(randomize_(DetectionHead())), str(path))
    result = run_python("import sys; from tvmbridge.cli import main; sys.exit(main())",
                        "report", str(path), "--input", "1x3x16x16:float32")
    assert result.returncode == 0, result.stderr
    assert "TVM block 0" in result.stdout and "aten::topk" in result.stdout

    model = randomize_(SmallNet())
    small = tmp_path / "small.pt"
    torch.jit.save(torch.jit.script(model), str(small))
    out = tmp_path / "small_tvm.pt"
    result = run_python("import sys; from tvmbridge.cli import main; sys.exit(main())",
                        "compile", str(small), "--input", "2x3x16x16", "-o", str(out),
                        "--keep-slower-regions")
    assert result.returncode == 0, result.stderr
    import tvmbridge  # noqa: F401  (registers the runtime class for torch.jit.load)

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
