"""The real server process with the tiny model slowed per batch, so a test can catch requests in the queue.

Usage: python tests/workloads/serving_slow_server.py --delay SECONDS <the server's own flags>
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from serving_helpers import SlowPredictor

from workloads.serving.config import parse_config
from workloads.serving.logs import setup_logging
from workloads.serving.model import load_predictor
from workloads.serving.server import serve


def main() -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--delay", type=float, required=True)
    known, rest = pre.parse_known_args()
    config = parse_config(rest)
    setup_logging(config.log_level)
    predictor = SlowPredictor(load_predictor(config.model_dir, max_seq_len=config.max_seq_len), known.delay)
    return asyncio.run(serve(config, predictor=predictor))


if __name__ == "__main__":
    sys.exit(main())
