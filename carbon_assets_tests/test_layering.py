"""Data flows bronze -> silver -> gold -> warehouse -> analytics: no layer imports from one
downstream of it (the README's *Where things are*)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "carbon_assets"
LAYERS = ["bronze", "silver", "gold", "warehouse", "analytics"]


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_a_layer_imports_nothing_downstream_of_it(layer):
    downstream = LAYERS[LAYERS.index(layer) + 1 :]
    for path in sorted((PACKAGE / layer).glob("*.py")):
        for module in imported_modules(path):
            parts = module.split(".")
            assert not (
                parts[0] == "carbon_assets" and len(parts) > 1 and parts[1] in downstream
            ), f"{path.relative_to(PACKAGE.parent)} imports {module}"


def test_the_shared_modules_import_no_layer():
    """The top-level modules every layer uses (storage, lake files, settings) stand alone."""
    for name in ("storage", "lake_files", "lake", "settings", "partitions", "locks"):
        for module in imported_modules(PACKAGE / f"{name}.py"):
            parts = module.split(".")
            assert not (parts[0] == "carbon_assets" and len(parts) > 1 and parts[1] in LAYERS), (
                f"{name}.py imports {module}"
            )
