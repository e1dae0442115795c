"""Generate the gRPC stubs of proto/votes.proto into this package (`make stubs`).

`-Iserve_app/grpc_stubs=proto` maps the proto into this package's import path, so the generated
modules import each other as `serve_app.grpc_stubs.votes_pb2`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "serve_app/grpc_stubs"
PROTO = "proto/votes.proto"
GENERATED = ("votes_pb2.py", "votes_pb2.pyi", "votes_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    """Write the stubs under out_dir/serve_app/grpc_stubs/."""
    (out_dir / PACKAGE).mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{PACKAGE}={ROOT / 'proto'}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(ROOT / PROTO),
    ])
    if status != 0:
        raise SystemExit(f"protoc failed with status {status} on {PROTO}")


if __name__ == "__main__":
    generate(ROOT)
    print(f"stubs: wrote {', '.join(GENERATED)} into {PACKAGE}/", file=sys.stderr)
