"""The rules of the source tree, checked: which package may import which, no import cycle,
no private helper imported across modules, empty package __init__ files, and the linter
configured in pyproject.toml. Each test reads the source (ast), so a broken rule fails here
whether or not the code path runs."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("oci", "rootless")


def module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield module_name(path), path


def imports(name, path):
    """(imported module, imported names) for every import in the file, at any depth (the
    lazy imports inside functions count: they are edges all the same)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:                # relative: from the module's own package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            found.append((module, tuple(alias.name for alias in node.names)))
    return found


MODULES = dict(sources())
EDGES = {name: imports(name, path) for name, path in MODULES.items()}


def targets(name):
    """The project modules `name` imports (a `from package import module` names the
    module)."""
    result = set()
    for module, names in EDGES[name]:
        if module.split(".")[0] not in PACKAGES:
            continue
        for imported in names:
            if f"{module}.{imported}" in MODULES:
                result.add(f"{module}.{imported}")
                break
        else:
            result.add(module)
    return result


def under(name, package):
    return name == package or name.startswith(package + ".")


# (importer, imported, why): a module under the first may not import one under the second
FORBIDDEN = [
    ("oci", "rootless", "oci/ is the spec layer below the engine"),
    ("rootless.image", "rootless.child", "images never run the container's child side"),
    ("rootless.friendly", "rootless.child", "the friendly mode builds on the runtime, not "
                                            "on the child side"),
    ("rootless.system", "rootless.runtime", "system/ is the lowest layer"),
    ("rootless.system", "rootless.child", "system/ is the lowest layer"),
    ("rootless.system", "rootless.image", "system/ is the lowest layer"),
    ("rootless.system", "rootless.friendly", "system/ is the lowest layer"),
    ("rootless.system", "rootless.network", "system/ is the lowest layer"),
]


@pytest.mark.parametrize("importer,imported,why", FORBIDDEN, ids=lambda v: str(v)[:30])
def test_forbidden_import_edges(importer, imported, why):
    wrong = [(name, target) for name in MODULES if under(name, importer)
             for target in targets(name) if under(target, imported)]
    assert not wrong, f"{why}: {wrong}"


def test_only_the_entry_point_imports_the_cli():
    wrong = [(name, target) for name in MODULES if not under(name, "rootless.cli")
             and name != "rootless.__main__"
             for target in targets(name) if under(target, "rootless.cli")]
    assert not wrong, wrong


def test_no_import_cycles():
    graph = {name: targets(name) & set(MODULES) for name in MODULES}
    # a package's __init__ is imported on the way to its modules: not an edge of ours
    graph = {name: {t for t in deps if not (MODULES[t].name == "__init__.py")}
             for name, deps in graph.items()}
    cycles = []

    def visit(name, path, on_path, done):
        if name in on_path:
            cycles.append(path[path.index(name):] + [name])
            return
        if name in done:
            return
        on_path.add(name)
        for target in sorted(graph[name]):
            visit(target, path + [target], on_path, done)
        on_path.discard(name)
        done.add(name)

    done = set()
    for name in sorted(graph):
        visit(name, [name], set(), done)
    assert not cycles, cycles


def test_no_private_helper_imported_across_modules():
    wrong = [(name, module, imported) for name in MODULES for module, names in EDGES[name]
             if module.split(".")[0] in PACKAGES for imported in names
             if imported.startswith("_") and imported != "__version__"]
    assert not wrong, wrong


def test_package_inits_are_empty():
    # (the lazy-import budget: importing rootless.runtime.create must not pull in more)
    filled = [str(path) for name, path in MODULES.items()
              if path.name == "__init__.py" and path.read_text().strip()]
    assert not filled, filled


def test_the_layout_section_of_the_readme_names_every_package():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    missing = [name for name in packages if name.split(".")[-1] + "/" not in layout]
    assert not missing, f"README's Layout section lacks {missing}"


def test_the_linter_passes():
    ruff = subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True)
    if ruff.returncode != 0:
        pytest.skip("ruff is not installed (it is in the test extra: pip install -e '.[test]')")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "oci",
                             "rootless", "tests", "scripts"], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_modules_have_names_of_their_own():
    # pytest imports test modules by basename (no packages under tests/): two files of one
    # name in two tiers stop the whole run at collection
    names = {}
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        names.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    assert not {name: paths for name, paths in names.items() if len(paths) > 1}


def test_every_import_of_the_project_names_a_module_it_has():
    # imports inside functions run late (a verb, a forked child): a module moved or
    # removed must fail here, not in a user's container
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    wrong = []
    for name in MODULES:
        for module, names in EDGES[name]:
            if module.split(".")[0] not in PACKAGES:
                continue
            if module not in MODULES:
                wrong.append((name, module))
            elif module in packages:
                wrong += [(name, f"{module}.{imported}") for imported in names
                          if f"{module}.{imported}" not in MODULES]
    assert not wrong, wrong
