"""``python -m bench.system_metrics [--quick]``: what the system-metrics sampler costs.

Takes samples back to back with the probe a run uses (psutil; NVML when present) and measures
the CPU time one sample costs this process (``time.process_time``: user + system, all
threads), and what the writer spends taking it in; the share of one core at the default
10-second interval is that cost divided by 10 s. Target (issue 15): under 1% of a core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from mltrail.config import DEFAULT_SYSTEM_METRICS_SECONDS
from mltrail.sdk.system import SystemProbe, sample_chunks

TARGET_SHARE = 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.system_metrics", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 samples instead of 500")
    args = parser.parse_args(argv)
    samples = 20 if args.quick else 500
    probe = SystemProbe()
    time.sleep(0.1)
    started = time.process_time()
    for i in range(samples):
        sample_chunks(probe.sample(), i, -1, time.time())  # what the sink hands the writer
    per_sample = (time.process_time() - started) / samples
    probe.close()
    share = per_sample / DEFAULT_SYSTEM_METRICS_SECONDS
    verdict = "ok" if share < TARGET_SHARE else "MISSED"
    print(f"{samples} samples: {per_sample * 1e3:.2f} ms of CPU per sample")
    print(
        f"every {DEFAULT_SYSTEM_METRICS_SECONDS:.0f} s: {share * 100:.4f}% of one core "
        f"(target < {TARGET_SHARE * 100:.0f}%: {verdict})"
    )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0 if share < TARGET_SHARE else 3


if __name__ == "__main__":
    sys.exit(main())
