"""`compare`: judge a candidate variant (shadow or weighted) against production from their data capture.

Requests both variants answered are paired by inference id, else by the request body (a shadow variant gets a
copy of each production request). On the pairs: label agreement for a classifier, cosine similarity for an
embedding model. On each variant alone: error rate and, where the capture carries it, p50/p99 latency. The
verdict is `promote` only when every configured check passes (thresholds from the stack's
promotionThresholds or `--threshold`); exit code 0 for promote, 1 for hold, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from contracts import lifecycle as lc
from workloads.common.cli import UsageError, number_pairs
from workloads.lifecycle import capture, stack

EXIT_HOLD = 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="agreement, error and latency deltas of two variants; promote or hold",
                       description=__doc__.split("\n")[0])
    p.add_argument("--production", required=True, help="capture of the production variant: folder, .jsonl or s3://")
    p.add_argument("--candidate", required=True, help="capture of the candidate (shadow or A/B) variant")
    p.add_argument("--stack-outputs", type=Path, help=f"its {lc.OUTPUT_PROMOTION_THRESHOLDS} are the thresholds")
    p.add_argument("--threshold", action="append", default=[], metavar="CHECK=VALUE",
                   help=f"a threshold (repeatable; overrides the stack's): {', '.join(lc.PROMOTION_CHECKS)}")
    p.add_argument("--report", type=Path, help="also write the report (JSON) here")
    p.set_defaults(run=run)


def thresholds(args: argparse.Namespace) -> dict[str, float]:
    found: dict[str, float] = {}
    if args.stack_outputs is not None:
        found.update(stack.load(args.stack_outputs).numbers(lc.OUTPUT_PROMOTION_THRESHOLDS,
                                                             why="the checks compare judges against"))
    found.update(number_pairs(args.threshold, "--threshold", "CHECK=NUMBER"))
    unknown = sorted(set(found) - set(lc.PROMOTION_CHECKS))
    if unknown:
        raise UsageError(f"unknown promotion check {unknown[0]!r} (known: {', '.join(lc.PROMOTION_CHECKS)})")
    if lc.PROMOTION_MIN_AGREEMENT not in found:
        raise UsageError(f"no '{lc.PROMOTION_MIN_AGREEMENT}' threshold: pass --stack-outputs (its "
                         f"{lc.OUTPUT_PROMOTION_THRESHOLDS}) or --threshold {lc.PROMOTION_MIN_AGREEMENT}=VALUE")
    return found


def variant_summary(records: list[capture.Record]) -> dict[str, Any]:
    inputs = sum(len(r.inputs) for r in records)
    errors = sum(1 for r in records if r.error is not None)
    latencies = np.array([r.latency_ms for r in records if r.latency_ms is not None], dtype=np.float64)
    summary: dict[str, Any] = {"requests": len(records), "inputs": inputs, "errors": errors,
                               "error_rate": errors / len(records) if records else 0.0}
    if latencies.size:
        summary["latency_p50_ms"] = float(np.percentile(latencies, 50))
        summary["latency_p99_ms"] = float(np.percentile(latencies, 99))
    return summary


def pair(production: list[capture.Record], candidate: list[capture.Record]) -> list[tuple[Any, Any]]:
    """Output pairs (one per input) of requests both variants answered."""
    by_id = {r.inference_id: r for r in candidate if r.inference_id}
    by_body: dict[str, list[capture.Record]] = defaultdict(list)
    for r in candidate:
        by_body[r.input_key].append(r)
    pairs = []
    used: set[int] = set()
    for r in production:
        other = by_id.get(r.inference_id) if r.inference_id else None
        if other is None:
            waiting = [c for c in by_body.get(r.input_key, ()) if id(c) not in used]
            other = waiting[0] if waiting else None
        if other is None or id(other) in used:
            continue
        used.add(id(other))
        if r.outputs is not None and other.outputs is not None and r.inputs == other.inputs:
            pairs.extend(zip(r.outputs, other.outputs))
    return pairs


def agreement(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Label agreement for classifier answers, cosine similarity for embedding vectors."""
    if not pairs:
        return {"kind": None, "value": None}
    first = pairs[0][0]
    if isinstance(first, dict):
        same = [a.get("label") == b.get("label") for a, b in pairs if isinstance(a, dict) and isinstance(b, dict)]
        return {"kind": "label", "value": float(np.mean(same)) if same else None}
    a = np.asarray([p[0] for p in pairs], dtype=np.float64)
    b = np.asarray([p[1] for p in pairs], dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise UsageError(f"embedding answers of different widths ({a.shape} vs {b.shape}): not the same model task")
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {"kind": "cosine", "value": float(cos.mean()), "p05": float(np.percentile(cos, 5)),
            "min": float(cos.min())}


def judge(report: dict[str, Any], limits: dict[str, float]) -> tuple[str, list[dict[str, Any]]]:
    prod, cand = report["production"], report["candidate"]
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | None, passed: bool | None, note: str = "") -> None:
        checks.append({"check": name, "threshold": limits[name], "value": value, "passed": passed,
                       **({"note": note} if note else {})})

    if lc.PROMOTION_MIN_PAIRS in limits:
        paired = report["paired_inputs"]
        check(lc.PROMOTION_MIN_PAIRS, paired, paired >= limits[lc.PROMOTION_MIN_PAIRS])
    value = report["agreement"]["value"]
    check(lc.PROMOTION_MIN_AGREEMENT, value, value is not None and value >= limits[lc.PROMOTION_MIN_AGREEMENT],
          "" if value is not None else "no requests answered by both variants")
    if lc.PROMOTION_MAX_ERROR_RATE_DELTA in limits:
        delta = cand["error_rate"] - prod["error_rate"]
        check(lc.PROMOTION_MAX_ERROR_RATE_DELTA, delta, delta <= limits[lc.PROMOTION_MAX_ERROR_RATE_DELTA])
    if lc.PROMOTION_MAX_LATENCY_RATIO in limits:
        if "latency_p99_ms" in prod and "latency_p99_ms" in cand:
            ratio = cand["latency_p99_ms"] / max(prod["latency_p99_ms"], 1e-9)
            check(lc.PROMOTION_MAX_LATENCY_RATIO, ratio, ratio <= limits[lc.PROMOTION_MAX_LATENCY_RATIO])
        else:  # SageMaker's own capture has no latency: judge it on the variants' ModelLatency metrics instead
            check(lc.PROMOTION_MAX_LATENCY_RATIO, None, None, "no latency in the capture; not judged")
    verdict = "promote" if all(c["passed"] is not False for c in checks) else "hold"
    return verdict, checks


def compare(production: Path, candidate: Path, limits: dict[str, float]) -> dict[str, Any]:
    prod, cand = list(capture.read(production)), list(capture.read(candidate))
    pairs = pair(prod, cand)
    report: dict[str, Any] = {"production": variant_summary(prod), "candidate": variant_summary(cand),
                              "paired_inputs": len(pairs), "agreement": agreement(pairs)}
    report["error_rate_delta"] = report["candidate"]["error_rate"] - report["production"]["error_rate"]
    if "latency_p99_ms" in report["production"] and "latency_p99_ms" in report["candidate"]:
        report["latency_p99_delta_ms"] = report["candidate"]["latency_p99_ms"] - report["production"]["latency_p99_ms"]
    report["verdict"], report["checks"] = judge(report, limits)
    return report


def run(args: argparse.Namespace) -> int:
    limits = thresholds(args)
    with tempfile.TemporaryDirectory(prefix="aiinfra-compare-") as tmp:
        report = compare(capture.local(args.production, Path(tmp)), capture.local(args.candidate, Path(tmp)), limits)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"event": "compared", **report}), flush=True)
    return 0 if report["verdict"] == "promote" else EXIT_HOLD
