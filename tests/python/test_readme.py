"""README's Python examples run as written, in order, in a fresh interpreter."""

import re
import subprocess
import sys

from conftest import ROOT


def test_readme_python_examples_run(tmp_path):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 4
    # A file, not -c: torch.jit.script reads the source of the classes it compiles.
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(blocks))
    # HOME: enable()'s default disk cache lives under it; keep it out of the user's.
    env = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin",
           "PYTHONWARNINGS": "ignore::FutureWarning", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
