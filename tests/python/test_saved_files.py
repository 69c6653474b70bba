"""Saving and loading compiled modules where the file system says no, and what loading leaves
behind. Each case runs in a fresh interpreter, so a crash fails the test instead of ending
pytest."""

import os
import textwrap

import pytest

from conftest import run_python

# Compiles SmallNet and saves it once to argv[1]; the snippets below then fail a second save.
PRELUDE = textwrap.dedent("""
    import os, resource, signal, sys, torch
    import tvmbridge.torch as tt
    sys.path.insert(0, {tests!r})
    from shared_models import SmallNet
    model = SmallNet().eval()
    compiled = tt.compile(torch.jit.script(model), [tt.Input((2, 3, 16, 16))], never_slower=False)
    path = sys.argv[1]
    torch.jit.save(compiled, path)
    good = open(path, "rb").read()
""").format(tests=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_case(body: str, path) -> str:
    result = run_python(PRELUDE + textwrap.dedent(body), str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_save_that_runs_out_of_space_raises_and_keeps_the_old_file(tmp_path):
    # RLIMIT_FSIZE makes write(2) fail part-way with EFBIG, as a full disk fails with ENOSPC.
    out = run_case("""
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(good) // 2, resource.RLIM_INFINITY))
        try:
            torch.jit.save(compiled, path)
        except RuntimeError as error:
            print("raised:", error)
        assert open(path, "rb").read() == good, "the old file was changed"
        print("left:", sorted(os.listdir(os.path.dirname(path))))
    """, tmp_path / "model.pt")
    assert "raised: tvmbridge: cannot write" in out and "File too large" in out
    assert "left: ['model.pt']" in out


def test_save_to_a_full_device_raises(tmp_path):
    out = run_case("""
        try:
            tt.save(compiled, "/dev/full")
        except RuntimeError as error:
            print("raised:", error)
    """, tmp_path / "model.pt")
    assert "raised: tvmbridge: cannot write /dev/full: No space left on device" in out


def test_save_to_a_read_only_location_raises_and_creates_nothing(tmp_path):
    # /proc takes no new files, also from root (a read-only folder would not stop root).
    out = run_case("""
        try:
            torch.jit.save(compiled, "/proc/tvmbridge-model.pt")
        except RuntimeError as error:
            print("raised:", error)
        print("exists:", os.path.exists("/proc/tvmbridge-model.pt"))
    """, tmp_path / "model.pt")
    assert "raised: tvmbridge: cannot create a file beside /proc/tvmbridge-model.pt" in out
    assert "exists: False" in out


def test_saved_file_has_the_usual_mode_and_loads(tmp_path):
    out = run_case("""
        import stat
        print("mode:", oct(stat.S_IMODE(os.stat(path).st_mode)), "umask:", oct(os.umask(0o22)))
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(torch.jit.load(path)(x), model(x), rtol=1e-4, atol=1e-4)
        tt.save(torch.jit.script(model), path)          # any TorchScript module
        torch.testing.assert_close(torch.jit.load(path)(x), model(x))
        print("ok")
    """, tmp_path / "model.pt")
    mode, umask = out.split()[1], out.split()[3]
    assert int(mode, 8) == 0o666 & ~int(umask, 8)
    assert "ok" in out


def test_save_refuses_what_is_not_torchscript():
    import torch
    import tvmbridge.torch as tt

    with pytest.raises(TypeError, match="expected a TorchScript module"):
        tt.save(torch.nn.Linear(2, 2), "/tmp/never-written.pt")


def test_loading_leaves_no_temporary_files(tmp_path):
    # The embedded library goes through a private temporary file for dlopen, removed at once.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = run_case(f"""
        os.environ["TMPDIR"] = {str(scratch)!r}
        loaded = torch.jit.load(path)
        loaded(torch.randn(2, 3, 16, 16))
        print("left:", os.listdir({str(scratch)!r}))
    """, tmp_path / "model.pt")
    assert "left: []" in out
