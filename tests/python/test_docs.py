"""The guides in docs/ stay true to the code: a code block quoted from the sources appears
there verbatim, and a block that starts with an import runs as written."""

import re
import subprocess
import sys

import pytest

from conftest import ROOT

GUIDES = ["adding-a-converter.md"]
QUOTED_FROM = ["src", "tests"]  # where quoted blocks must be found


def _blocks(guide: str) -> list[tuple[str, str]]:
    text = (ROOT / "docs" / guide).read_text()
    return re.findall(r"```(cpp|python)\n(.*?)```", text, flags=re.S)


def _sources() -> str:
    return "\n".join(path.read_text() for folder in QUOTED_FROM
                     for path in sorted((ROOT / folder).rglob("*"))
                     if path.suffix in (".cc", ".h", ".py") and path.is_file())


@pytest.mark.parametrize("guide", GUIDES)
def test_quoted_code_is_in_the_sources(guide):
    sources = _sources()
    quoted = [code for _, code in _blocks(guide) if not code.startswith("import ")]
    assert quoted, f"{guide} quotes no code"
    for code in quoted:
        assert code in sources, f"{guide} quotes code the sources do not have:\n{code}"


@pytest.mark.parametrize("guide", GUIDES)
def test_runnable_examples_run(guide, tmp_path):
    runnable = [code for language, code in _blocks(guide)
                if language == "python" and code.startswith("import ")]
    assert runnable, f"{guide} has no runnable example"
    script = tmp_path / "example.py"
    script.write_text("\n\n".join(runnable))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin",
                                 "HOME": str(tmp_path)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
