"""The package's layers, read from its source with ``ast``: each module imports only from its own layer or the ones
below it, there is no import circle, configuration imports nothing from the package, and imports inside
functions are kept for optional extras only (each with a comment)."""

import ast
from pathlib import Path

import pytest

PACKAGE = "propetl_adapters"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Bottom to top. A module may import from its own layer and the layers before it. A name ending in ".*" stands for
# a subpackage and all its modules. Every module of the package must be listed (a new module picks its layer).
LAYERS = [
    ("configuration", ["configuration", "atomic", "geometry", "mask_coding"]),
    ("core", ["masks", "prototype", "mask_io", "multitask"]),
    ("data", ["data", "data.*"]),
    ("methods", ["methods", "methods.*", "heads"]),
    ("library", ["", "adapter_folder", "serialization", "patches", "training", "mask_movement", "storage", "inference",
                 "export", "ablation"]),
    ("experiments", ["experiments", "experiments.*"]),
    ("reports", ["reports", "reports.*"]),
]
# Imported inside the function that needs them, so the package works without them (each import carries a comment).
OPTIONAL_EXTRAS = {"matplotlib", "peft", "rouge_score", "sacrebleu"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _layer(module: str) -> int:
    relative = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if relative == member or (member.endswith(".*") and relative.startswith(member[:-1])):
                return index
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py; add it to LAYERS")


def _imports(module: str, source: str = None):
    """``(imported module, line, inside a function)`` for every import statement of ``module`` (its file, or
    ``source`` read as if it were that module)."""
    path = MODULES.get(module)
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    package = module if path is not None and path.name == "__init__.py" else module.rsplit(".", 1)[0]
    nested = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested |= {id(inner) for inner in ast.walk(node) if inner is not node}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            # `from . import x` may name a submodule; otherwise the import is of the module itself.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        else:
            continue
        for target in targets:
            found.append((target, node.lineno, id(node) in nested))
    return found


def _package_edges(module: str):
    edges = []
    for target, line, _ in _imports(module):
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            while target not in MODULES:  # `import propetl_adapters.x.y` of a name defined in a module
                target = target.rsplit(".", 1)[0]
            edges.append((target, line))
    return edges


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_configuration_imports_nothing_from_the_package():
    assert _package_edges(f"{PACKAGE}.configuration") == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_layer_above_it(module):
    own = _layer(module)
    above = [f"{target} (line {line}, layer {LAYERS[_layer(target)][0]})" for target, line in _package_edges(module)
             if _layer(target) > own]
    assert not above, f"{module} (layer {LAYERS[own][0]}) imports from above: {above}"


def test_there_is_no_import_circle():
    graph = {module: sorted({target for target, _ in _package_edges(module)} - {module}) for module in MODULES}
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in graph[module]:
            if state.get(target) == "open":
                circle = stack[stack.index(target):] + [target]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module)


def test_imports_inside_functions_are_optional_extras_with_a_comment():
    offending = []
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, line, inside_function in _imports(module):
            if not inside_function:
                continue
            if target.split(".")[0] not in OPTIONAL_EXTRAS or "#" not in lines[line - 1]:
                offending.append(f"{module}:{line} imports {target}")
    assert not offending, "imports inside functions (allowed: optional extras, with a comment): " + ", ".join(
        offending)


def test_the_checker_sees_a_function_level_import_and_an_upward_import():
    """The rules above can fail: a planted upward import and a function-level import are found."""
    module = f"{PACKAGE}.methods.planted"
    source = "from ..experiments.run_folder import DONE_FILE\n\n\ndef f():\n    import json\n"
    found = _imports(module, source)
    assert found == [(f"{PACKAGE}.experiments.run_folder", 1, False), ("json", 5, True)]
    assert _layer(found[0][0]) > _layer(module)
