"""`python -m workloads.lifecycle <command>`: register, approve, reject, compare, baseline, drift."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from workloads.common.cli import run_main

PROG = "python -m workloads.lifecycle"


def build_parser() -> argparse.ArgumentParser:
    from workloads.lifecycle import approval, baseline, compare, drift, register

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split(":", 1)[1].strip())
    sub = parser.add_subparsers(dest="command", required=True)
    register.add_parser(sub)
    approval.add_parsers(sub)
    compare.add_parser(sub)
    baseline.add_parser(sub)
    drift.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    def go(argv_: Sequence[str] | None) -> int:
        args = build_parser().parse_args(argv_)
        return args.run(args)

    return run_main(go, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
