"""Command line of the local stack: `python -m deployments.local.stack up|down|status|...`."""

import argparse
import sys
from collections.abc import Sequence

from deployments.local.stack.control import ALL_PARTS, Stack
from deployments.local.stack.errors import StackError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.local.stack",
        description="Local dev stack: Kafka (KRaft), Redis and FerretDB (on SQLite, or on "
        "PostgreSQL with VOTES_STACK_FERRETDB_BACKEND=postgresql) under .stack/.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "install", help="install what is missing (needs the network), start nothing"
    )
    commands.add_parser("up", help="install what is missing, start everything, wait until healthy")
    commands.add_parser("down", help="stop everything this stack started (data kept)")
    commands.add_parser("status", help="one line per part; exit 0 if all healthy, 3 otherwise")
    commands.add_parser("clean", help="down, then delete data and logs (installed tools kept)")
    for name, text in (
        ("start", "start one part and wait until healthy"),
        ("stop", "stop one part"),
        ("kill", "SIGKILL one part, as a crash would (no shutdown; data kept)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("part", choices=ALL_PARTS)
    return parser


def run(stack: Stack, args: argparse.Namespace) -> int:
    """Carry out one command; the exit code (status: 3 when a part is not healthy)."""
    if args.command == "status":
        statuses = stack.status()
        for part_status in statuses:
            print(part_status.line())
        return 0 if all(s.healthy for s in statuses) else 3
    if args.command == "install":
        stack.install()
    elif args.command == "up":
        stack.up()
    elif args.command == "down":
        stack.down()
    elif args.command == "clean":
        stack.clean()
    elif args.command == "start":
        stack.start(args.part)
    elif args.command == "stop":
        stack.stop(args.part)
    elif args.command == "kill":
        stack.kill(args.part)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(Stack(), args)
    except StackError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
