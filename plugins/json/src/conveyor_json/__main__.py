"""``python -m conveyor_json repair PATH [--dry-run]``: cut a damaged store at its last valid
record, keeping a backup, and say what was cut."""

from __future__ import annotations

import argparse
import sys

from conveyor import ConveyorError
from conveyor_json.repair import inspect, repair


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit status (0 done, 1 failed, 2 usage)."""
    parser = argparse.ArgumentParser(prog="python -m conveyor_json")
    commands = parser.add_subparsers(dest="command", required=True)
    cut = commands.add_parser("repair", help="cut a store at its last valid record")
    cut.add_argument("path", help="the store file")
    cut.add_argument("--dry-run", action="store_true", help="report what would be cut")
    args = parser.parse_args(argv)
    try:
        found = inspect(args.path) if args.dry_run else repair(args.path)
    except (ConveyorError, OSError) as exc:
        print(f"conveyor_json repair: {exc}", file=sys.stderr)
        return 1
    print(found.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
