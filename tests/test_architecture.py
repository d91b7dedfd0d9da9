"""The layout the package docstring describes, checked on the source: every import (at module
level or inside a function) goes to a package of a lower rank (`core.layers.LAYERS`), only
the registries reach the toy world, and no modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import golden_noise
from golden_noise.core.layers import LAYERS, RANK

SOURCE = Path(golden_noise.__file__).parent

# Outside the toy world, these reach it: the registries (pipelines, scorers, rewards, prompt
# sources), the toy demo and the CLI's toy commands.
TOY_DOORS = {
    "golden_noise.adapters.loading",
    "golden_noise.scorers.toy",
    "golden_noise.scorers.rewards",
    "golden_noise.teachers.composed_offset",
    "golden_noise.prompts.sources",
    "golden_noise.cli.toy",
    "golden_noise.cli.demo",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SOURCE.rglob("*.py")}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.Module, *, module_level_only: bool) -> list[str]:
    """The package's modules `tree` imports (a `from X import name` of a submodule counts as
    that submodule); TYPE_CHECKING blocks are skipped."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.split(".")[0] == "golden_noise")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("golden_noise"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append(sub if sub in MODULES else node.module)
        if module_level_only and isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        ):
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _package(module: str) -> str | None:
    """The top-level package a module belongs to; None for `golden_noise` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _all_imports(module_level_only: bool) -> dict[str, set[str]]:
    return {
        name: set(_imports(ast.parse(path.read_text()), module_level_only=module_level_only))
        for name, path in MODULES.items()
    }


def test_every_package_has_a_rank() -> None:
    packages = {p.name for p in SOURCE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(RANK)
    assert len(RANK) == sum(len(names) for names in LAYERS)  # no package on two ranks
    assert {_package(m) for m in MODULES} - {None} == set(RANK)  # no loose modules


def test_packages_import_only_lower_ranks() -> None:
    upward = []
    for module, targets in _all_imports(module_level_only=False).items():
        home = _package(module)
        if home is None:  # the package's front door re-exports from anywhere, lazily
            continue
        for target in targets:
            there = _package(target)
            if there is None:
                upward.append(f"{module} -> {target} (the front door)")
            elif there != home and RANK[there] >= RANK[home]:
                upward.append(
                    f"{module} -> {target} ({home} rank {RANK[home]}, {there} {RANK[there]})"
                )
    assert not upward, "imports that do not go down a rank:\n" + "\n".join(sorted(upward))


def test_only_registries_reach_the_toy_world() -> None:
    reaching = {
        module
        for module, targets in _all_imports(module_level_only=False).items()
        if _package(module) not in ("toy", "demo")
        and any(_package(target) == "toy" for target in targets)
    }
    assert reaching <= TOY_DOORS, f"toy world reached outside its doors: {reaching - TOY_DOORS}"


def test_no_import_cycles() -> None:
    graph = _all_imports(module_level_only=True)
    done: set[str] = set()
    cycles: list[list[str]] = []

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(path[path.index(module) :] + [module])
            return
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            walk(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cli_loads_without_torch() -> None:
    """`golden-noise --help` stays fast: commands import torch, diffusers, timm, transformers and
    accelerate inside themselves, and option types come from plain settings modules."""
    import subprocess
    import sys

    heavy = ("torch", "diffusers", "timm", "transformers", "accelerate", "scipy")
    script = f"import sys, golden_noise.cli; print([m for m in {heavy!r} if m in sys.modules])"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout
