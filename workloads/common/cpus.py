"""How many CPUs this process may really use: the affinity mask, capped by a cgroup CPU quota.

`os.cpu_count()` reports the node's cores, not a container's limit: a pod limited to 2 CPUs on a 64-core node
that starts 64 model workers thrashes in CFS throttling. Kubernetes enforces a CPU limit as a cgroup quota
(cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), so the quota, rounded up, caps the count.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _quota(root: Path) -> float | None:
    """CPUs allowed by the cgroup quota, or None when there is none (or no cgroup filesystem)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cpus(root: Path = CGROUP) -> int:
    """The CPUs this process may use: affinity, then the cgroup quota rounded up; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = _quota(root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)
