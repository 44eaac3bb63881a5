"""The `--stack` / `--stack-file` arguments every command shares, and the synth they lead to."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiinfra.engine import synthesize
from aiinfra.graph import ResourceGraph, ResourceRecord


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name: dev, staging, prod (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument("--stack-file", type=Path, default=None,
                        help="read config from this file instead of stacks/Pulumi.<stack>.yaml")


def synthesize_from_args(args: argparse.Namespace, *, quiet: bool = False) -> ResourceGraph:
    """Run the program for the chosen stack, with a live resource counter when stderr is a terminal."""
    progress = None if quiet or not sys.stderr.isatty() else _Counter(args.stack)
    try:
        return synthesize(args.stack, stack_file=args.stack_file, progress=progress)
    finally:
        if progress is not None:
            progress.close()


class _Counter:
    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.count = 0

    def __call__(self, record: ResourceRecord) -> None:
        self.count += 1
        sys.stderr.write(f"\rsynthesizing {self.stack}: {self.count} resources ({record.type})".ljust(100)[:100])
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r" + " " * 100 + "\r")
        sys.stderr.flush()
