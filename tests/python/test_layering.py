"""The layering the code keeps (docs/architecture.md): no import cycles between the Python
modules, counting imports inside functions, and C++ folders that include only the layers
below them (compiler -> partition -> passes -> frontend; runtime and the public headers stand
alone)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python" / "tvmbridge"

# What each folder of src/ may include besides itself; include/tvmbridge is the public API.
ALLOWED_INCLUDES = {
    "compiler": {"partition", "passes", "frontend", "runtime", "tvmbridge"},
    "partition": {"passes", "frontend", "tvmbridge"},
    "passes": {"frontend", "tvmbridge"},
    "frontend": {"tvmbridge"},
    "runtime": {"tvmbridge"},
    "tensorflow": set(),
}


def _package_imports(path: Path) -> set[str]:
    """The tvmbridge modules `path` imports, anywhere in it."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [alias.name for alias in node.names]
            modules.update(name.split(".")[0] for name in names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tvmbridge."):
            modules.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[1] for alias in node.names
                           if alias.name.startswith("tvmbridge."))
    return {m for m in modules if (PACKAGE / f"{m}.py").exists() and m != path.stem}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph`, as the modules along it, or None."""
    state = {}  # module -> "open" while on the current path, "done" after

    def visit(module, path):
        state[module] = "open"
        for dependency in sorted(graph.get(module, ())):
            if state.get(dependency) == "open":
                return path[path.index(dependency):] + [dependency]
            if dependency not in state:
                found = visit(dependency, path + [dependency])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_python_modules_import_no_cycle():
    graph = {path.stem: _package_imports(path) for path in PACKAGE.glob("*.py")}
    assert graph["torch"] and graph["build"], "the import scan found nothing"
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cpp_folders_include_only_the_layers_below():
    include = re.compile(r'#include "([a-z_]+)/')
    wrong = []
    for folder, allowed in ALLOWED_INCLUDES.items():
        for source in sorted((ROOT / "src" / folder).glob("*.[ch]*")):
            for target in include.findall(source.read_text()):
                if target != folder and target not in allowed:
                    wrong.append(f"{source.relative_to(ROOT)} includes {target}/")
    assert not wrong, "\n".join(wrong)
