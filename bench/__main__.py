"""The benchmark's one command line: `python -m bench <command> [options]`.

    python -m bench run [options]      make bench: every path and sink side by side (latest.*)
    python -m bench scale [options]    make bench-scale: scaling with replicas (scale.*)
    python -m bench peers build        make bench-peers: build the seed's Rust and Go peers

`<command> --help` lists each one's options.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from bench.harness import cli
from bench.peers import seed
from bench.scenarios.scale import run as scale

COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": cli.main,
    "scale": scale.main,
    "peers": seed.main,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    return COMMANDS[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
