"""The `aiinfra` command: one subcommand per module, each with `add_parser(subparsers)` and `run(args) -> int`.

Bad input (unknown stack, bad config, unreadable files) ends with one line on stderr and exit code 2, never a
traceback: operators run this in CI and read the last line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from aiinfra import cost, diagram, export, policy_command, preview, rehearse
from aiinfra.errors import UsageError
from contracts.config import SettingsError

COMMANDS = (preview, export, policy_command, cost, diagram, rehearse)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiinfra",
        description="Render, check and export the aiinfra Pulumi program offline, under Pulumi's mocks.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (SettingsError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a shell tool killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
