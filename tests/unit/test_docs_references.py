"""Every backticked code reference in README.md and docs/**/*.md resolves, so that the docs follow
the code when it moves. No services.

What counts as a code reference (anything else in backticks, such as a command, a route, a value,
an environment variable or a Redis key, is left alone):

- a path: a word with a `/` whose first part is a top-level entry of the repository
  (`serve_app/pool/stall.py`, `deployments/k8s/`), or a bare `.py` file name (`stack.py`). The
  path must be a tracked file or folder, a bare name some tracked file's name. Paths git ignores
  (outputs, local secrets) are not checked;
- a dotted path into one of our packages (`serve_app.pool.stall`, `bench.apps:build_ingest_only`,
  `serve_app.stores.redis_counts.TOTAL`): the module must exist and define the name;
- `Class.member` where the class is ours (`VoteProducer.send`): the class must define the member.
  Other libraries' classes (`Histogram.observe`) and `module.name` words, which cannot be told
  from other libraries' (`serve.status()`, `gc.freeze()`), are not checked;
- a call (`decide()`, `describe_errors(max_chars=...)`) or a private name (`_commit`): it must be
  defined in our Python code and, when its paragraph (or table row, or list item) names `.py`
  files outside tests/, in one of them. NOT_OURS lists the few such words that are other
  libraries' names or not Python at all, each with what it is;
- an UPPER_CASE name (`RSS_EXPLAINED`) that our code defines, in a paragraph that names `.py`
  files: it must be defined (or imported) in one of them. One our code does not define is an
  environment variable or another library's, and is left alone.

Inside code blocks only `serve_app/**.py` paths are checked (the README's diagram of a vote's path).
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUR_PACKAGES = ("serve_app", "bench", "loadtest", "devkit", "deployments", "scripts", "tests")
NOT_OURS: dict[str, str] = {
    "_id": "MongoDB's document key",
    "_total": "a Prometheus metric suffix",
    "_bucket": "a Prometheus metric suffix",
    "_sum": "a Prometheus metric suffix",
    "_count": "a Prometheus metric suffix",
    "_GRPC_PORT": "the end of Ray's RAY_SERVE_FALLBACK_PROXY_*_GRPC_PORT variables",
    "_TIMED_OUT": "librdkafka's KafkaError._TIMED_OUT",
    "poll": "confluent_kafka's Producer.poll / Consumer.poll",
    "accept": "the socket call",
    "repr": "Python's builtin",
    "Query": "FastAPI's query parameter",
    "count_documents": "pymongo's Collection.count_documents",
    "find": "pymongo's Collection.find",
    "txn_requires_abort": "confluent_kafka's KafkaError.txn_requires_abort",
    "RequiredAcks": "Go's sarama.RequiredAcks",
    "_apply_autoscaling_config": "Ray Serve's ray.serve.autoscaling_policy",
}

BACKTICKED = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
PATH_WORD = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$")
NAME = re.compile(r"^(?P<name>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)(?P<call>\(.*\))?$")
# Inside code blocks (diagrams, examples) only the runtime's own files are checked.
RUNTIME_PATH = re.compile(r"(?<![\w/.-])serve_app/[\w/]+\.py\b")
CONSTANT = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")
PACKAGE_PATH = re.compile(r"^[a-z_]\w*(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?(\(.*\))?$")


@dataclass(frozen=True)
class Reference:
    doc: Path
    line: int
    text: str
    paragraph_files: tuple[Path, ...]  # the `.py` files (outside tests/) its paragraph names

    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}: `{self.text}`"


def docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


# ---- the repository ---------------------------------------------------------------------------


@functools.cache
def tracked_files() -> frozenset[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return frozenset(name for name in listed.split("\0") if name and (ROOT / name).exists())


@functools.cache
def tracked_folders() -> frozenset[str]:
    return frozenset(
        str(Path(name).parents[k])
        for name in tracked_files()
        for k in range(len(Path(name).parents) - 1)
    )


@functools.cache
def top_level_entries() -> frozenset[str]:
    return frozenset(name.split("/", 1)[0] for name in tracked_files())


def ignored_by_git(path: str) -> bool:
    return (
        subprocess.run(
            ["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, check=False
        ).returncode
        == 0
    )


@functools.cache
def python_files() -> tuple[Path, ...]:
    return tuple(
        ROOT / name
        for name in sorted(tracked_files())
        if name.endswith((".py", ".pyi")) and name.split("/", 1)[0] in OUR_PACKAGES
    )


@functools.cache
def defined_names(path: Path) -> frozenset[str]:
    """Every name a Python file defines, at any depth: functions, classes, assigned names and
    attributes (`self.x = ...`), and `Class.member` for each class's members."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        names.update(bound_names(node))
        if isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}.{name}"
                for member in ast.walk(node)
                for name in bound_names(member)
                if member is not node
            )
    return frozenset(names)


@functools.cache
def classes_in(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef))


def bound_names(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    if isinstance(node, ast.Import | ast.ImportFrom):  # a file that imports a name uses it there
        yield from (alias.asname or alias.name.split(".")[0] for alias in node.names)
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    for target in targets:
        for part in ast.walk(target):
            if isinstance(part, ast.Name):
                yield part.id
            elif isinstance(part, ast.Attribute):
                yield part.attr


def defined_anywhere(name: str) -> list[Path]:
    return [path for path in python_files() if name in defined_names(path)]


# ---- reading the docs -------------------------------------------------------------------------


def references(doc: Path) -> Iterator[Reference]:
    """The backticked words of a markdown file outside code blocks, each with the `.py` files its
    paragraph names. A paragraph ends at a blank line; a table row, a list item and a heading
    each start a new one."""
    paragraph: list[tuple[int, str]] = []

    def flush() -> Iterator[Reference]:
        words = [(n, word.strip()) for n, line in paragraph for word in BACKTICKED.findall(line)]
        files = tuple(
            path
            for _, word in words
            if word.endswith(".py") and kind_of(word) == "path" and not word.startswith("tests/")
            for path in resolve_path(word)
        )
        paragraph.clear()
        for number, word in words:
            yield Reference(doc, number, word, files)

    in_fence = False
    for number, line in enumerate(doc.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            yield from flush()
            continue
        if in_fence:
            for word in RUNTIME_PATH.findall(line):
                yield Reference(doc, number, word, ())
            continue
        stripped = line.lstrip()
        if (
            not stripped
            or stripped.startswith(("|", "- ", "* ", "#"))
            or re.match(r"\d+\. ", stripped)
        ):
            yield from flush()
        if stripped:
            paragraph.append((number, line))
    yield from flush()


def kind_of(text: str) -> str | None:
    """What a backticked word refers to: "path", "package" (a dotted path into our packages),
    "member" (`Class.member`), "name" (a call or a private name), or None (not code we check)."""
    if PATH_WORD.match(text) and not text.startswith((".", "~")):
        if "/" in text and text.split("/", 1)[0] in top_level_entries():
            return "path"
        if "/" not in text and text.endswith(".py") and text.count(".") == 1:
            return "path"
    if PACKAGE_PATH.match(text) and text.split(".", 1)[0] in OUR_PACKAGES:
        return "package"
    name = NAME.match(text)
    if name is None:
        return None
    parts = name["name"].split(".")
    if len(parts) > 1:
        return "member" if parts[0][:1].isupper() else None
    if name["call"] is not None or parts[0].startswith("_"):
        return "name"
    if CONSTANT.match(text):
        return "constant"
    return None


# ---- resolving --------------------------------------------------------------------------------


def resolve_path(text: str) -> list[Path]:
    if "/" in text:
        name = text.rstrip("/")
        found = name in tracked_files() or name in tracked_folders()
        return [ROOT / name] if found else []
    return [ROOT / name for name in sorted(tracked_files()) if name.rsplit("/", 1)[-1] == text]


def check_path(text: str) -> str | None:
    if resolve_path(text) or ("/" in text and ignored_by_git(text)):
        return None
    return "no such file in the repository"


def module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.relative_to(ROOT).as_posix() in tracked_files():
            return candidate
    return None


def check_package_path(text: str) -> str | None:
    """Why a dotted path into our packages does not resolve; None when it does."""
    parts = text.split("(", 1)[0].replace(":", ".").split(".")
    for split in range(len(parts), 0, -1):
        module = module_file(".".join(parts[:split]))
        if module is None:
            continue
        rest = ".".join(parts[split:])
        if rest and rest not in defined_names(module):
            return f"{module.relative_to(ROOT)} defines no `{rest}`"
        return None
    return f"no module {'.'.join(parts[:2])} in the repository"


def check_member(text: str) -> str | None:
    """`Class.member`: checked when the class is one of ours (outside tests/)."""
    owner, _, member = text.split("(", 1)[0].partition(".")
    classes = [path for path in python_files() if owner in classes_in(path) and not is_test(path)]
    if not classes or any(f"{owner}.{member}" in defined_names(path) for path in classes):
        return None
    return f"class {owner} ({classes[0].relative_to(ROOT)}) has no `{member}`"


def is_test(path: Path) -> bool:
    return path.relative_to(ROOT).parts[0] == "tests"


def check_name(ref: Reference) -> str | None:
    """Why a call or a private name is not defined where its paragraph says; None if it is."""
    name = ref.text.split("(", 1)[0]
    if name in NOT_OURS:
        return None
    if ref.paragraph_files and any(name in defined_names(path) for path in ref.paragraph_files):
        return None
    found = defined_anywhere(name)
    if not found:
        return "defined nowhere in our Python code"
    if not ref.paragraph_files:
        return None
    named = ", ".join(str(p.relative_to(ROOT)) for p in ref.paragraph_files)
    return f"defined in {found[0].relative_to(ROOT)}, not in {named} (its paragraph's files)"


def check_constant(ref: Reference) -> str | None:
    """An UPPER_CASE name in a paragraph that names `.py` files, and that our code defines: it must
    be defined in one of those files. Defined nowhere, it is an environment variable or another
    library's, and is not checked."""
    found = defined_anywhere(ref.text)
    if not found or not ref.paragraph_files:
        return None
    if any(ref.text in defined_names(path) for path in ref.paragraph_files):
        return None
    named = ", ".join(str(p.relative_to(ROOT)) for p in ref.paragraph_files)
    return f"defined in {found[0].relative_to(ROOT)}, not in {named} (its paragraph's files)"


def problem(ref: Reference) -> str | None:
    kind = kind_of(ref.text)
    if kind == "path":
        return check_path(ref.text)
    if kind == "package":
        return check_package_path(ref.text)
    if kind == "member":
        return check_member(ref.text)
    if kind == "name":
        return check_name(ref)
    if kind == "constant":
        return check_constant(ref)
    return None


def test_every_code_reference_in_the_docs_resolves() -> None:
    stale = [
        f"{ref.where()}: {why}"
        for doc in docs()
        for ref in references(doc)
        if (why := problem(ref)) is not None
    ]
    assert not stale, "stale code references in the docs:\n" + "\n".join(stale)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("serve_app/pool/stall.py", "path"),
        ("deployments/k8s/", "path"),
        ("stack.py", "path"),
        ("serve_app.pool.stall", "package"),
        ("bench.apps:build_ingest_only", "package"),
        ("serve_env.ray_token_env(token_file)", None),
        ("gc.freeze()", None),
        ("votes.dlq", None),
        ("VoteProducer.send", "member"),
        ("_commit", "name"),
        ("describe_errors(max_chars=...)", "name"),
        ("make run", None),
        ("/results", None),
        ("VOTES_WRITE_TOKEN", "constant"),
        ("RAY_USE_UVLOOP=0", None),
        ("votes:total", None),
        ("vote_id", None),
        ("422", None),
        ("config.yaml", None),
        (".stack/ray/auth_token", None),
        ("prom_metrics_service_discovery.json", None),
    ],
)
def test_what_counts_as_a_code_reference(text: str, kind: str | None) -> None:
    assert kind_of(text) == kind


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("serve_app/pool/no_such_module.py", "no such file"),
        ("no_such_module.py", "no such file"),
        ("serve_app.pool.stall.no_such_name", "defines no `no_such_name`"),
        ("serve_app.no_such_module", "defines no `no_such_module`"),
        ("scripts.no_such_module", "no module"),
        ("VoteProducer.no_such_method", "has no `no_such_method`"),
        ("_no_such_private_name", "defined nowhere"),
    ],
)
def test_a_stale_reference_says_why(text: str, why: str) -> None:
    found = problem(Reference(ROOT / "README.md", 1, text, ()))
    assert found is not None and why in found


def test_a_name_must_be_in_the_files_its_paragraph_names(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "`describe_errors()` in `serve_app/domain/votes.py`.\n\n"
        "`describe_errors()` in `serve_app/pool/stall.py`.\n"
    )
    [call, _path, moved, _other] = references(doc)
    assert problem(call) is None
    assert "not in serve_app/pool/stall.py" in (problem(moved) or "")


def test_runtime_paths_in_code_blocks_are_checked(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("```text\n  serve_app/pool/stall.py  ok\n  serve_app/pool/gone.py\n```\n")
    [kept, gone] = references(doc)
    assert problem(kept) is None
    assert problem(gone) == "no such file in the repository" and gone.line == 3


def test_a_constant_is_checked_only_where_its_paragraph_names_files(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "`STALL_LIMIT_S` in `serve_app/pool/stall.py`.\n\n"
        "`STALL_LIMIT_S` in `serve_app/domain/votes.py`.\n\n"
        "`VOTES_WRITE_TOKEN` in `serve_app/domain/votes.py`; `STALL_LIMIT_S` alone.\n"
    )
    found = {(ref.line, ref.text): problem(ref) for ref in references(doc)}
    assert found[(1, "STALL_LIMIT_S")] is None
    assert "not in serve_app/domain/votes.py" in (found[(3, "STALL_LIMIT_S")] or "")
    assert found[(5, "VOTES_WRITE_TOKEN")] is None  # our code defines no such name: not ours
