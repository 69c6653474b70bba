"""torch.jit.save -> torch.jit.load in a fresh process, and tvmbridge-run from C++."""

import os
import subprocess
import zipfile

import pytest
import torch
import torchvision

import tvmbridge.torch as tt
from conftest import BUILD, randomize_, run_python

SHAPE = (1, 3, 224, 224)


@pytest.fixture(scope="module")
def saved_resnet(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_(torchvision.models.resnet18(weights=None))
    compiled = tt.compile(torch.jit.script(model), inputs=[tt.Input(SHAPE)], never_slower=False)
    path = tmp_path_factory.mktemp("saved") / "resnet18_tvm.pt"
    torch.jit.save(compiled, str(path))
    torch.manual_seed(0)
    x = torch.randn(SHAPE)
    with torch.no_grad():
        return path, x, compiled(x), model(x)


def test_saved_file_is_self_contained(saved_resnet):
    path, *_ = saved_resnet
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    # The library travels as tensor data inside the archive; no path to a .so is stored.
    assert any("/data/" in name for name in names)
    assert path.stat().st_size > 40 * 2**20  # ResNet-18's weights are inside


def test_fresh_process_loads_and_matches(saved_resnet, tmp_path):
    path, x, compiled_out, expected = saved_resnet
    torch.save(x, tmp_path / "x.pt")
    code = (
        "import sys, torch, tvmbridge\n"
        "m = torch.jit.load(sys.argv[1])\n"
        "y = m(torch.load(sys.argv[2]))\n"
        "torch.save(y, sys.argv[3])\n"
    )
    tmpdir = tmp_path / "private-tmp"
    tmpdir.mkdir()
    env_tmp = dict(os.environ, TMPDIR=str(tmpdir))
    result = subprocess.run(
        [os.sys.executable, "-c", code, str(path), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
        env=dict(env_tmp, PYTHONPATH=os.environ.get("PYTHONPATH", "")),
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    y = torch.load(tmp_path / "y.pt")
    torch.testing.assert_close(y, compiled_out, rtol=0, atol=0)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
    assert list(tmpdir.iterdir()) == []  # the private library file was removed after loading


def test_load_without_import_names_the_missing_class(saved_resnet):
    path, *_ = saved_resnet
    result = run_python("import sys, torch; torch.jit.load(sys.argv[1])", str(path))
    assert result.returncode != 0
    assert "tvmbridge" in result.stderr


def test_tvmbridge_run_matches_python(saved_resnet, tmp_path):
    path, x, compiled_out, _ = saved_resnet
    out_file = tmp_path / "out.pkl"
    result = subprocess.run(
        [str(BUILD / "tvmbridge-run"), str(path), "--input", "1x3x224x224:float32",
         "--repeat", "2", "--warmup", "0", "--seed", "0", "--save-output", str(out_file)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "output 0: shape [1, 1000] dtype float32" in result.stdout
    assert "latency: median" in result.stdout
    (y,) = torch.load(out_file)
    torch.testing.assert_close(y, compiled_out, rtol=1e-6, atol=1e-6)
    checksum = float(result.stdout.split(" sum ")[1].split()[0])
    assert checksum == pytest.approx(compiled_out.double().sum().item(), rel=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "no model given"),
        (["model.pt"], "no --input given"),
        (["model.pt", "--input", "1xbad"], "--input takes a non-negative integer"),
        (["model.pt", "--input", "1x3:complex"], "unknown dtype"),
        (["model.pt", "--bogus"], "unknown option --bogus"),
    ],
)
def test_tvmbridge_run_usage_errors(args, message):
    result = subprocess.run([str(BUILD / "tvmbridge-run"), *args], capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr


def test_tvmbridge_run_reports_bad_input_shape(saved_resnet):
    path, *_ = saved_resnet
    result = subprocess.run(
        [str(BUILD / "tvmbridge-run"), str(path), "--input", "1x3x32x32", "--repeat", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 1
    assert "input 0" in result.stderr and "shape [1, 3, 32, 32]" in result.stderr


def test_tampered_file_is_refused_on_load(saved_resnet, tmp_path):
    path, *_ = saved_resnet
    tampered = tmp_path / "tampered.pt"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as target:
        infos = source.infolist()
        # The largest data record is the embedded library (it holds the weights as constants).
        # Rewriting the archive keeps every CRC valid, so only tvmbridge's SHA-256 can notice.
        library = max((i for i in infos if "/data/" in i.filename), key=lambda i: i.file_size)
        for info in infos:
            data = source.read(info)
            if info.filename == library.filename:
                data = bytearray(data)
                data[len(data) // 2] ^= 0x01
                data = bytes(data)
            target.writestr(info, data)
    result = run_python("import sys, torch, tvmbridge; torch.jit.load(sys.argv[1])", str(tampered))
    assert result.returncode != 0
    assert "altered or corrupted" in result.stderr


def test_truncated_files_are_refused_with_an_error(saved_resnet):
    # Every cut point gives a Python exception (in a fresh process: a crash would show).
    path, *_ = saved_resnet
    result = run_python("""
import io, sys, torch, tvmbridge
data = open(sys.argv[1], "rb").read()
for fraction in (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 0.9999):
    try:
        torch.jit.load(io.BytesIO(data[:int(len(data) * fraction)]))
        print("loaded", fraction)
    except RuntimeError:
        print("refused", fraction)
""", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split().count("refused") == 7, result.stdout
