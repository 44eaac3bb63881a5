"""The drift job's time per 100k captured records, against reading the same capture alone, in one run.

Writes a baseline from demo training data, then SageMaker capture files (base64 bodies, one input and one
classifier answer per record, in `<endpoint>/<variant>/yyyy/mm/dd/hh/` files of 10k records) of `--records`
records, undrifted and drifted, and times:
  * read: parsing every capture line into records (JSON, base64, the bodies) and nothing else: the floor;
  * drift: `python -m workloads.lifecycle drift` in-process (read, signals, KS / chi-square / PSI, report).
Each figure is the median of `--repeat` runs; the ratio drift / read says what the statistics cost on top.

    python bench/drift.py [--records 100000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workloads.lifecycle import capture  # noqa: E402
from workloads.lifecycle.__main__ import main as lifecycle  # noqa: E402
from workloads.training.demo import examples, write_jsonl  # noqa: E402

PER_FILE = 10_000


def write_capture(root: Path, records: list[dict], *, suffix: str = "") -> Path:
    folder = root / "aiinfra-prod-text-classifier" / "primary" / "2026" / "12" / "02" / "08"
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(records), PER_FILE):
        with (folder / f"{start:08d}.jsonl").open("w", encoding="utf-8") as fh:
            for i, r in enumerate(records[start:start + PER_FILE], start):
                answer = {"label": r["label"], "scores": {r["label"]: 0.9, "other": 0.1}}
                fh.write(capture.line([r["text"] + suffix], [answer], inference_id=f"r{i}", event_id=f"e{i}") + "\n")
    return root


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp_name:
        tmp = Path(tmp_name)
        write_jsonl(tmp / "train.jsonl", examples(20_000, 0))
        with contextlib.redirect_stdout(io.StringIO()):
            assert lifecycle(["baseline", "--train", str(tmp / "train.jsonl"), "--out", str(tmp / "baseline")]) == 0
        live = examples(args.records, 1)
        sources = {"undrifted": write_capture(tmp / "ok", live),
                   "drifted": write_capture(tmp / "bad", live, suffix=" refund invoice delayed")}
        size = sum(p.stat().st_size for p in (tmp / "ok").rglob("*.jsonl"))
        results = {"records": args.records, "capture_mib": round(size / 2**20, 1),
                   "load_average": os.getloadavg()[0]}
        results["read_s"] = timed(lambda: sum(1 for _ in capture.read(sources["undrifted"])), args.repeat)
        for name, source in sources.items():
            out = tmp / f"report-{name}"

            def job() -> None:
                with contextlib.redirect_stdout(io.StringIO()):
                    assert lifecycle(["drift", "--capture", str(source), "--baseline", str(tmp / "baseline"),
                                      "--out", str(out)]) == 0

            results[f"drift_{name}_s"] = timed(job, args.repeat)
            report = json.loads((out / "drift-report.json").read_text())
            results[f"{name}_status"] = report["status"]
            results[f"{name}_drifted"] = len(report["drifted"])
        per = 100_000 / args.records
        results["drift_per_100k_s"] = round(results["drift_undrifted_s"] * per, 2)
        results["read_per_100k_s"] = round(results["read_s"] * per, 2)
        results["drift_over_read"] = round(results["drift_undrifted_s"] / results["read_s"], 2)
        results["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
