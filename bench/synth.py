"""How long the offline synth of each shipped stack takes.

Measured in one process, against a baseline in the same run: the engine running a one-resource program (the
fixed cost of a synth: event loop, mocks, stack resource). Reports the median of several in-process runs per
stack, per-resource cost, and the cold `python -m aiinfra preview` wall time (imports included).

    python bench/synth.py [--repeat 5] [--stacks dev staging prod]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pulumi_aws as aws  # noqa: E402

from aiinfra.engine import run_program, synthesize  # noqa: E402
from aiinfra.stackfile import StackConfig, available_stacks  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stacks", nargs="*", default=available_stacks())
    args = parser.parse_args()

    config = StackConfig("aiinfra", "bench", "bench", {"aws:region": "us-east-1"}, ())
    synthesize(args.stacks[0])  # warm imports and caches once, outside every measurement
    baseline, _ = timed(lambda: run_program(lambda: aws.kms.Key("k", enable_key_rotation=True), config),
                        args.repeat)
    print(f"baseline: one-resource program under the same engine: {baseline * 1000:.0f} ms (median of {args.repeat})")
    print(f"{'stack':<9}{'resources':>10}{'synth (median)':>16}{'x baseline':>12}{'ms/resource':>13}{'cold CLI':>10}")
    for stack in args.stacks:
        seconds, graph = timed(lambda: synthesize(stack), args.repeat)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aiinfra", "preview", "--stack", stack], cwd=ROOT, check=True,
                       capture_output=True)
        cold = time.perf_counter() - start
        count = len(graph)
        print(f"{stack:<9}{count:>10}{seconds:>15.2f}s{seconds / baseline:>12.1f}"
              f"{(seconds - baseline) / count * 1000:>13.1f}{cold:>9.2f}s")


if __name__ == "__main__":
    main()
