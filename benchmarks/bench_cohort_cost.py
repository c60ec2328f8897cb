"""CPU cost of generating the demo cohort, estimated without generating all of it.

Simulates and NIfTI-encodes the first ``--per-dataset`` subjects of each dataset of the demo
profile's plan, measures process CPU time per scan, and multiplies by the plan's scans per
dataset. ``--old-profile`` plans the pre-issue-22 demo cohort (300 subjects, former shares, up to
3 visits); to measure the former code too, run it with ``PYTHONPATH`` pointing at a checkout of
that code. CPU time, unlike wall time, does not depend on what else shares the machine.

    python benchmarks/bench_cohort_cost.py [--old-profile]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict

from neurossl.cohort.acquisition import nifti_bytes
from neurossl.cohort.anatomy import load_template
from neurossl.cohort.cohort_plan import plan_cohort
from neurossl.cohort.synth import simulate_subject
from neurossl.config import load_config

OLD_SHARES = {"cognition": 0.45, "glioma": 0.2, "autism": 0.15, "pool": 0.12, "headct": 0.08}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-profile", action="store_true")
    parser.add_argument("--per-dataset", type=int, default=8)
    args = parser.parse_args()
    cfg = load_config("demo").cohort
    if args.old_profile:
        cfg.subjects, cfg.dataset_shares, cfg.max_visits = 300, dict(OLD_SHARES), 3
    plans = plan_cohort(cfg)
    template = load_template(cfg.resolution_mm)
    cpu, scans_done, seen = defaultdict(float), Counter(), Counter()
    for plan in plans:
        if seen[plan.dataset] >= args.per_dataset:
            continue
        seen[plan.dataset] += 1
        start = time.process_time()
        for _, _, scan in simulate_subject(template, plan, cfg.seed):
            nifti_bytes(scan.data, scan.affine)
            nifti_bytes(scan.mask, scan.affine)
            scans_done[plan.dataset] += 1
        cpu[plan.dataset] += time.process_time() - start
    planned = Counter(p.dataset for p in plans for s in p.sessions for _ in s.scans)
    print("| dataset | scans | CPU s / scan |\n|---|---|---|")
    for name in planned:
        print(f"| {name} | {planned[name]} | {cpu[name] / scans_done[name]:.3f} |")
    total = sum(cpu[d] / scans_done[d] * planned[d] for d in planned)
    print(f"| whole cohort | {sum(planned.values())} | {total:.0f} CPU s (estimated) |")


if __name__ == "__main__":
    main()
