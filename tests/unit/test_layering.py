"""Imports in serve_app run one way: from the composition root and the ingress, read and pool
sides down to the stores, settings and domain. A back-edge (settings importing the ingress, the
read side importing the producer) fails here, naming the module and what it imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "serve_app"

# Each layer and the layers it may import (besides itself). A layer is a subpackage or a
# top-level module of serve_app; "serve_app" is the package's __init__ (its __version__).
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "settings": {"domain"},
    "grpc_stubs": set(),
    "metrics": set(),
    "kafka_errors": set(),
    "tcp_nodelay": set(),
    "http_problem": set(),
    "serve_app": set(),
    "stores": {"domain", "settings"},
    "read": {"domain", "settings", "stores", "grpc_stubs", "http_problem"},
    "pool": {"domain", "settings", "stores", "metrics", "kafka_errors"},
    # The ingress replica hosts the read routes and the GetResults RPC: it composes the read side.
    "ingress": {
        "domain",
        "settings",
        "read",
        "grpc_stubs",
        "http_problem",
        "metrics",
        "kafka_errors",
        "tcp_nodelay",
        "serve_app",
    },
    "serve_env": {"ingress"},
    "app": {"ingress", "pool", "settings"},
}


def layer_of(module: str) -> str:
    """serve_app.read.routes -> read; serve_app -> serve_app."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every serve_app module `path` imports, including under TYPE_CHECKING and in functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "serve_app" or name.startswith("serve_app.")}


def back_edges(modules: dict[str, set[str]]) -> list[str]:
    """The imports that break ALLOWED, as 'importer -> imported' lines."""
    known = {module_name(path) for path in PACKAGE.rglob("*.py")} | {"serve_app"}
    problems: set[str] = set()
    for importer, imports in sorted(modules.items()):
        own = layer_of(importer)
        for imported in sorted(imports):
            if imported not in known:  # `from pkg import name` where name is not a module
                imported = imported.rpartition(".")[0]
            target = layer_of(imported)
            if target != own and target not in ALLOWED[own]:
                problems.add(f"{importer} -> {imported}")
    return sorted(problems)


def serve_app_imports() -> dict[str, set[str]]:
    return {module_name(path): imported_modules(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({layer_of(name) for name in serve_app_imports()} - ALLOWED.keys())
    assert not unplaced, f"place these in ALLOWED of {__file__}: {unplaced}"


def test_imports_run_one_way() -> None:
    assert back_edges(serve_app_imports()) == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("serve_app.settings", "serve_app.ingress.admission"),
        ("serve_app.domain.votes", "serve_app.settings"),
        ("serve_app.read.read_side", "serve_app.ingress.producer"),
        ("serve_app.stores.redis_counts", "serve_app.read.read_side"),
        ("serve_app.pool.clients", "serve_app.ingress.producer"),
    ],
)
def test_a_back_edge_is_found(importer: str, imported: str) -> None:
    modules = serve_app_imports()
    modules[importer] = modules[importer] | {imported}
    assert back_edges(modules) == [f"{importer} -> {imported}"]
