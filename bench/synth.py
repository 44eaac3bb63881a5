"""How long the offline synth of each shipped stack takes.

Measured in one process, against a baseline in the same run: the engine running a one-resource program (the
fixed cost of a synth: event loop, mocks, stack resource). Reports the median of several in-process runs per
stack (wall and CPU seconds: the machine is shared, CPU time is the steadier figure), per-resource cost, and
the cold `python -m aiinfra preview` (a new process: imports, synth and policy report), wall and CPU. The first
synth in the process is timed too: it includes the provider SDK modules imported on first use.

    python bench/synth.py [--repeat 5] [--stacks dev staging prod]
"""

from __future__ import annotations

import argparse
import os
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


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of `repeat` calls, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def cold_cli(stack: str) -> tuple[float, float]:
    """Wall and CPU (user + sys of the child) seconds of one `python -m aiinfra preview` in a new process."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aiinfra", "preview", "--stack", stack], cwd=ROOT, check=True,
                   capture_output=True)
    wall = time.perf_counter() - start
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stacks", nargs="*", default=available_stacks())
    args = parser.parse_args()

    config = StackConfig("aiinfra", "bench", "bench", {"aws:region": "us-east-1"}, ())
    first_wall, first_cpu, _ = timed(lambda: synthesize(args.stacks[0]), 1)  # imports provider modules on first use
    print(f"first synth in this process ({args.stacks[0]}, provider modules imported on first use): "
          f"{first_wall:.2f} s wall, {first_cpu:.2f} s CPU")
    baseline, baseline_cpu, _ = timed(
        lambda: run_program(lambda: aws.kms.Key("k", enable_key_rotation=True), config), args.repeat)
    print(f"baseline: one-resource program under the same engine: {baseline * 1000:.0f} ms wall, "
          f"{baseline_cpu * 1000:.0f} ms CPU (median of {args.repeat})")
    print(f"{'stack':<9}{'resources':>10}{'synth wall':>12}{'synth CPU':>11}{'x baseline':>12}{'ms/resource':>13}"
          f"{'cold wall':>11}{'cold CPU':>10}")
    for stack in args.stacks:
        seconds, cpu, graph = timed(lambda: synthesize(stack), args.repeat)
        cold, cold_cpu = cold_cli(stack)
        count = len(graph)
        print(f"{stack:<9}{count:>10}{seconds:>11.2f}s{cpu:>10.2f}s{seconds / baseline:>12.1f}"
              f"{(seconds - baseline) / count * 1000:>13.1f}{cold:>10.2f}s{cold_cpu:>9.2f}s")
    print(f"load average after the run: {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()
