"""`drift`: compare captured traffic with the training baseline; write a report and CloudWatch metrics.

Per signal (workloads/lifecycle/signals.py): the two-sample Kolmogorov-Smirnov test for a continuous one, the
chi-square goodness-of-fit test against the baseline's shares for a categorical one, and the population
stability index (PSI) on the baseline's bins for both. A signal has drifted when its test is significant
(p < alpha) *and* its PSI reaches the threshold: with 100k records a test alone flags shifts too small to
matter, and with a few dozen a PSI alone flags noise. The report goes to `<out>/drift-report.json` (with
Model Monitor's `constraint_violations.json` beside it); the number of drifted signals and the largest PSI go
to CloudWatch under the namespace, metric and dimension names the stack's drift alarm watches
(contracts/lifecycle.py).

Run locally on capture files (`--capture`), or with no `--capture` as a Model Monitor bring-your-own-container
job, which reads SageMaker's environment: dataset_source, output_path, baseline_statistics,
baseline_constraints, sagemaker_endpoint_name, publish_cloudwatch_metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from contracts import lifecycle as lc
from workloads.common.cli import UsageError, read_json_object
from workloads.lifecycle import baseline as baseline_mod
from workloads.lifecycle import capture, signals

# Model Monitor also sets the monitoring window; it may download more hours than the window, so records whose
# inferenceTime falls outside [start_time, end_time) are skipped.
MONITOR_START_TIME = "start_time"
MONITOR_END_TIME = "end_time"
EPSILON = 1e-4  # floor of a bin's share in PSI, so an empty bin counts as rare rather than infinite


def add_parser(sub: Any) -> None:
    p = sub.add_parser("drift", help="drift of captured traffic against the training baseline",
                       description=__doc__.split("\n")[0])
    p.add_argument("--capture", help="capture files: .jsonl, folder or s3:// prefix (absent: Model Monitor mode, "
                   f"reading {lc.MONITOR_DATASET_SOURCE} and the rest from the environment)")
    p.add_argument("--baseline", type=Path, help=f"folder with {lc.BASELINE_STATISTICS_FILE} (and "
                   f"{lc.BASELINE_CONSTRAINTS_FILE}), or the statistics file itself")
    p.add_argument("--out", type=Path, help=f"folder for {lc.DRIFT_REPORT_FILE} (default: the current folder)")
    p.add_argument("--endpoint", help=f"endpoint name: the metrics' {lc.DRIFT_DIMENSION} dimension")
    p.add_argument("--publish-metrics", action="store_true",
                   help=f"put {lc.DRIFT_METRIC} and {lc.DRIFT_MAX_PSI_METRIC} to CloudWatch ({lc.DRIFT_NAMESPACE})")
    p.add_argument("--alpha", type=float, help="override the constraints' significance level")
    p.add_argument("--psi", type=float, help="override the constraints' PSI threshold")
    p.add_argument("--region", help="AWS region for CloudWatch (default: the AWS config)")
    p.set_defaults(run=run)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.clip(expected, EPSILON, None)
    a = np.clip(actual, EPSILON, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def continuous(base: Mapping[str, Any], values: np.ndarray) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    result = ks_2samp(np.asarray(base["sample"], dtype=np.float64), values)
    return {"test": "ks", "statistic": float(result.statistic), "p_value": float(result.pvalue),
            "psi": psi(np.asarray(base["proportions"]), signals.bin_shares(values, base["edges"])),
            "baseline_mean": base["mean"], "mean": float(values.mean())}


def categorical(base: Mapping[str, Any], counter: Mapping[str, int]) -> dict[str, Any]:
    """Chi-square of the captured counts against the baseline shares; unseen categories fall in <other>."""
    from scipy.stats import chisquare

    categories = list(base["categories"])
    if signals.OTHER not in categories:
        categories.append(signals.OTHER)
    shares = dict(zip(base["categories"], base["proportions"]))
    observed = np.zeros(len(categories))
    for category, count in counter.items():
        observed[categories.index(category) if category in shares else categories.index(signals.OTHER)] += count
    expected_share = np.clip(np.array([shares.get(c, 0.0) for c in categories]), EPSILON, None)
    expected_share /= expected_share.sum()
    total = observed.sum()
    result = chisquare(observed, expected_share * total)
    return {"test": "chi-square", "statistic": float(result.statistic), "p_value": float(result.pvalue),
            "psi": psi(expected_share, observed / total), "categories": len(categories)}


def load_baseline(path: Path, constraints_path: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The statistics and constraints documents (constraints default to baseline's defaults when absent)."""
    statistics_path = path / lc.BASELINE_STATISTICS_FILE if path.is_dir() else path
    if constraints_path is None:
        constraints_path = statistics_path.with_name(lc.BASELINE_CONSTRAINTS_FILE)
    statistics = read_json_object(statistics_path, "baseline statistics")
    if statistics.get("version") != baseline_mod.FORMAT_VERSION or not isinstance(statistics.get("signals"), dict):
        raise UsageError(f"{statistics_path}: not baseline statistics of version {baseline_mod.FORMAT_VERSION} "
                         "(write it with `python -m workloads.lifecycle baseline`)")
    constraints = dict(baseline_mod.DEFAULT_CONSTRAINTS)
    if constraints_path.is_file():
        constraints.update({k: v for k, v in read_json_object(constraints_path, "baseline constraints").items() if k != "version"})
    return statistics, constraints


def parse_time(value: str, what: str) -> datetime:
    """An ISO 8601 UTC time as SageMaker writes it ("2026-12-02T08:00:00Z"; stray spaces tolerated)."""
    try:
        parsed = datetime.fromisoformat(value.replace(" ", ""))
    except ValueError:
        raise UsageError(f"{what} {value!r}: expected an ISO 8601 time such as 2026-12-02T08:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _in_window(record: capture.Record, window: tuple[datetime, datetime] | None) -> bool:
    if window is None or record.time is None:
        return True
    try:
        when = parse_time(record.time, "inferenceTime")
    except UsageError:
        return True  # judged rather than dropped: a record's odd time is no reason to lose its data
    return window[0] <= when < window[1]


def measure(capture_path: Path, statistics: Mapping[str, Any], constraints: Mapping[str, Any],
            window: tuple[datetime, datetime] | None = None) -> dict[str, Any]:
    """The drift report of the capture under `capture_path` against the baseline (records in `window` only)."""
    extractor = signals.Extractor(vocabulary=statistics["vocabulary"], seed=statistics["seed"],
                                  projections=statistics["projections"])
    requests = errors = outside = 0
    for record in capture.read(capture_path):
        if not _in_window(record, window):
            outside += 1
            continue
        requests += 1
        for text in record.inputs:
            extractor.add_text(text)
        if record.outputs is None:
            errors += 1
            continue
        for output in record.outputs:
            extractor.add_output(output)
    report: dict[str, Any] = {"requests": requests, "inputs": extractor.inputs, "errors": errors,
                              "outside_window": outside,
                              "thresholds": {"alpha": constraints["alpha"], "psi": constraints["psi"],
                                             "min_records": constraints["min_records"]},
                              "baseline_records": statistics["records"], "signals": {}}
    if extractor.inputs < constraints["min_records"]:
        report.update(status="insufficient-data", drifted=[], max_psi=0.0)
        return report
    for name, base in sorted(statistics["signals"].items()):
        if base["kind"] == signals.CONTINUOUS and extractor.continuous.get(name):
            result = continuous(base, np.asarray(extractor.continuous[name], dtype=np.float64))
        elif base["kind"] == signals.CATEGORICAL and sum(extractor.counts.get(name, {}).values()):
            result = categorical(base, extractor.counts[name])
        else:
            continue  # a signal the capture does not carry (e.g. model answers the baseline was not given)
        result["drifted"] = bool(result["p_value"] < constraints["alpha"] and result["psi"] >= constraints["psi"])
        report["signals"][name] = result
    report["drifted"] = sorted(n for n, r in report["signals"].items() if r["drifted"])
    report["max_psi"] = max((r["psi"] for r in report["signals"].values()), default=0.0)
    report["status"] = "drift" if report["drifted"] else "ok"
    return report


def violations(report: Mapping[str, Any]) -> dict[str, Any]:
    """Model Monitor's constraint_violations.json: one baseline_drift_check violation per drifted signal."""
    return {"violations": [
        {"feature_name": name, "constraint_check_type": "baseline_drift_check",
         "description": f"{r['test']} p={r['p_value']:.3g} < {report['thresholds']['alpha']} and PSI "
                        f"{r['psi']:.3f} >= {report['thresholds']['psi']}"}
        for name, r in report["signals"].items() if r["drifted"]]}


def publish(report: Mapping[str, Any], endpoint: str, *, region: str | None = None, client: Any = None) -> None:
    """DriftedSignals and MaxPSI with the Endpoint dimension, what the stack's drift alarm watches."""
    import boto3

    cloudwatch = client or boto3.client("cloudwatch", region_name=region)
    dimensions = [{"Name": lc.DRIFT_DIMENSION, "Value": endpoint}]
    try:
        cloudwatch.put_metric_data(Namespace=lc.DRIFT_NAMESPACE, MetricData=[
            {"MetricName": lc.DRIFT_METRIC, "Dimensions": dimensions, "Value": float(len(report["drifted"])),
             "Unit": "Count"},
            {"MetricName": lc.DRIFT_MAX_PSI_METRIC, "Dimensions": dimensions, "Value": float(report["max_psi"]),
             "Unit": "None"},
        ])
    except Exception as exc:  # noqa: BLE001 - botocore's ClientError and connection errors
        raise UsageError(f"publishing drift metrics to CloudWatch ({lc.DRIFT_NAMESPACE}): {exc}") from None


def monitor_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The Model Monitor job's environment as this command's settings; a missing variable is one line."""
    def need(name: str) -> str:
        value = environ.get(name)
        if not value:
            raise UsageError(f"no --capture and no {name} in the environment: run with --capture and --baseline "
                             "locally, or as a Model Monitor job")
        return value

    source = need(lc.MONITOR_DATASET_SOURCE)
    statistics = need(lc.MONITOR_BASELINE_STATISTICS)
    constraints = environ.get(lc.MONITOR_BASELINE_CONSTRAINTS)
    window = None
    if environ.get(MONITOR_START_TIME) and environ.get(MONITOR_END_TIME):
        window = (parse_time(environ[MONITOR_START_TIME], MONITOR_START_TIME),
                  parse_time(environ[MONITOR_END_TIME], MONITOR_END_TIME))
    return {"capture": source, "baseline": Path(statistics),
            "constraints": Path(constraints) if constraints else None,
            "out": Path(environ.get(lc.MONITOR_OUTPUT_PATH) or lc.MONITOR_OUTPUT_DIR),
            "endpoint": need(lc.MONITOR_ENDPOINT_NAME),
            "publish": environ.get(lc.MONITOR_PUBLISH_METRICS, "Disabled") == "Enabled",
            "window": window}


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    if args.capture:
        if args.baseline is None:
            raise UsageError("--capture needs --baseline (write one with `python -m workloads.lifecycle baseline`)")
        settings = {"capture": args.capture, "baseline": args.baseline, "constraints": None,
                    "out": args.out or Path("."), "endpoint": args.endpoint, "publish": args.publish_metrics,
                    "window": None}
    else:
        settings = monitor_settings(env)
    if settings["publish"] and not settings["endpoint"]:
        raise UsageError(f"--publish-metrics needs --endpoint (the metrics' {lc.DRIFT_DIMENSION} dimension)")
    statistics, constraints = load_baseline(settings["baseline"], settings["constraints"])
    for name in ("alpha", "psi"):
        if getattr(args, name) is not None:
            constraints[name] = getattr(args, name)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aiinfra-drift-") as tmp:
        source = capture.local(settings["capture"], Path(tmp))
        report = measure(source, statistics, constraints, settings["window"])
    report.update(endpoint=settings["endpoint"], capture=str(settings["capture"]),
                  seconds=round(time.perf_counter() - started, 3))
    out: Path = settings["out"]
    out.mkdir(parents=True, exist_ok=True)
    (out / lc.DRIFT_REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "constraint_violations.json").write_text(json.dumps(violations(report), indent=2) + "\n",
                                                    encoding="utf-8")
    if settings["publish"] and report["status"] != "insufficient-data":
        publish(report, settings["endpoint"], region=args.region)
    print(json.dumps({"event": "drift", "status": report["status"], "drifted": report["drifted"],
                      "max_psi": round(report["max_psi"], 4), "inputs": report["inputs"],
                      "report": str(out / lc.DRIFT_REPORT_FILE), "published": bool(settings["publish"])}), flush=True)
    return 0
