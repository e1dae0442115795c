"""Generate the gRPC stubs of proto/votes.proto into this package (`make stubs`).

`-Iserve_app/grpc_stubs=proto` maps the proto into this package's import path, so the generated
modules import each other as `serve_app.grpc_stubs.votes_pb2`.
"""

from __future__ import annotations

import re
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
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PACKAGE}={ROOT / 'proto'}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(ROOT / PROTO),
        ]
    )
    if status != 0:
        raise SystemExit(f"protoc failed with status {status} on {PROTO}")
    drop_servicer_base(out_dir / PACKAGE / "votes_pb2_grpc.py")


# protoc's servicer base class is a placeholder: every method answers UNIMPLEMENTED. Nothing
# here subclasses it: Serve calls the deployment's methods by name
# through add_VoteServiceServicer_to_server, and a plain grpc server accepts any object with the
# methods. Leaving it out keeps placeholder code out of the package.
SERVICER_BASE = re.compile(
    r"\nclass VoteServiceServicer:\n.*?(?=\n\ndef add_VoteServiceServicer_to_server)", re.DOTALL
)
SERVICER_NOTE = (
    "\n# VoteServiceServicer, protoc's base class answering UNIMPLEMENTED, is left out on purpose:"
    "\n# see serve_app/grpc_stubs/generate.py.\n"
)


def drop_servicer_base(path: Path) -> None:
    text, found = SERVICER_BASE.subn(SERVICER_NOTE, path.read_text())
    if found != 1:
        raise SystemExit(f"{path}: protoc's VoteServiceServicer class not found where expected")
    path.write_text(text)


if __name__ == "__main__":
    generate(ROOT)
    print(f"stubs: wrote {', '.join(GENERATED)} into {PACKAGE}/", file=sys.stderr)
