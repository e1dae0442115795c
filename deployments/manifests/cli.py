"""`python -m deployments.manifests` (make manifests, make check-manifests)."""

from __future__ import annotations

import argparse
import sys

import yaml

from deployments.manifests.generated import check, generated_files
from deployments.repo import Repo, add_repo_option


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.manifests",
        description="Generate kuberay/rayservice.yaml from config.yaml (make manifests).",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a generated file would change",
    )
    add_repo_option(parser)
    args = parser.parse_args(argv)
    try:
        repo = Repo.at(args.repo)
        files = generated_files(repo)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"manifests: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = check(files)
        if problems:
            print("manifests: generated files are stale; run `make manifests`:", file=sys.stderr)
            for problem in problems:
                print("  " + problem, file=sys.stderr)
            return 1
        print(f"manifests: {len(files)} generated file(s) up to date")
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        changed = not path.is_file() or path.read_text() != text
        if changed:
            path.write_text(text)
        print(f"manifests: {path.relative_to(repo.root)} {'written' if changed else 'unchanged'}")
    return 0
