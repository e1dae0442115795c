"""Every runtime module stays under 300 lines (the generated gRPC stubs aside), and every module
of the tooling around it (bench, loadtest, deployments, scripts, devkit) under 400: a module that
grows past it is split by responsibility."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "serve_app"
MAX_LINES = 299
TOOLING = ("bench", "loadtest", "deployments", "scripts", "devkit")
TOOLING_MAX_LINES = 399
GENERATED = {PACKAGE / "grpc_stubs" / "votes_pb2.py", PACKAGE / "grpc_stubs" / "votes_pb2_grpc.py"}


def too_long(paths: list[Path], max_lines: int = MAX_LINES) -> dict[str, int]:
    lengths = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text().splitlines()) for path in paths
    }
    return {name: lines for name, lines in lengths.items() if lines > max_lines}


def test_every_runtime_module_is_under_300_lines() -> None:
    modules = sorted(set(PACKAGE.rglob("*.py")) - GENERATED)
    assert len(modules) > 40
    assert too_long(modules) == {}


def test_every_tooling_module_is_under_400_lines() -> None:
    modules = sorted(path for folder in TOOLING for path in (PACKAGE.parent / folder).rglob("*.py"))
    assert len(modules) > 100
    assert too_long(modules, TOOLING_MAX_LINES) == {}


def test_a_long_module_is_named(tmp_path: Path) -> None:
    long = PACKAGE / "domain" / "votes.py"
    assert too_long([long], max_lines=10) == {
        "serve_app/domain/votes.py": len(long.read_text().splitlines())
    }
