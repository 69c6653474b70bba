"""README's Python examples run as written, in order, in a fresh interpreter."""

import re

from conftest import ROOT, run_python


def test_readme_python_examples_run():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 3
    result = run_python("\n\n".join(blocks))
    assert result.returncode == 0, result.stderr[-4000:]
