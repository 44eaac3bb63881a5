"""How long the offline policy run takes per stack, split into the synth and the rule evaluation, and what the
cost estimate comes to. `python bench/policy.py --repeats 20`"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiinfra.engine import synthesize  # noqa: E402
from aiinfra.policy_runner import evaluate, mandatory, resource_views  # noqa: E402
from policies.rules.cost_model import estimate  # noqa: E402
from policies.rules import ALL_RULES, Stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20, help="evaluations per stack (median reported)")
    parser.add_argument("--stacks", nargs="+", default=["dev", "staging", "prod"])
    args = parser.parse_args()
    print(f"{len(ALL_RULES)} rules; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| stack | resources | synth | evaluate (median) | findings (mandatory) | estimated $/month |")
    print("|---|---|---|---|---|---|")
    for stack in args.stacks:
        start = time.perf_counter()
        graph = synthesize(stack)
        synth = time.perf_counter() - start
        timings = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            findings = evaluate(graph)
            timings.append(time.perf_counter() - start)
        total = estimate(Stack(resource_views(graph))).total
        print(f"| {stack} | {sum(1 for r in graph if r.custom)} | {synth:.2f} s | "
              f"{statistics.median(timings) * 1000:.1f} ms | {len(findings)} ({len(mandatory(findings))}) | "
              f"{total:,.2f} |")


if __name__ == "__main__":
    main()
