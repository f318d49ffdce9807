"""Benchmark: participants one after another against side by side (``--parallel-participants``).

    python benchmarks/bench_participants.py                     # 4 participants, 3 mm, 2 processes
    python benchmarks/bench_participants.py --participants 2 --anatomy template   # quick look

Writes the demo (the real head by default) once, then runs the participant level twice on
it, each run in its own output and work folders: the baseline with ``--parallel-participants
1`` (a participant at a time, all processes to it), then the default (one participant per
process). Prints both wall times, their ratio, each participant's wall time from its
``resources.json``, and the machine's load before and after each run (a loaded machine
makes both slower; compare the ratio, not the seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(demo: Path, out: Path, work: Path, nprocs: int, extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.setdefault("TEMPLATEFLOW_HOME", str(ROOT / ".cache" / "templateflow"))
    cmd = [sys.executable, "-m", "pipeline", str(demo / "bids"), str(out), "participant",
           "--config", str(demo / "inflamap-demo.yml"), "-w", str(work), "--nprocs",
           str(nprocs), "--omp-nthreads", "1", "--skip-bids-validation", *extra]  # fmt: skip
    started = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - started
    if p.returncode != 0:
        sys.exit(f"run failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return wall


def _per_participant(out: Path) -> str:
    walls = []
    for f in sorted((out / "logs").glob("sub-*/resources.json")):
        walls.append(f"{f.parent.name} {json.loads(f.read_text())['wall_time_s']:.0f} s")
    return ", ".join(walls)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--participants", type=int, default=4)
    p.add_argument("--resolution", type=float, default=3.0)
    p.add_argument("--anatomy", default="colin27", choices=["colin27", "template"])
    p.add_argument("--nprocs", type=int, default=2)
    p.add_argument("--keep", metavar="DIR", help="write everything here (kept)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from pipeline.demo import make_demo

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_part_"))
    demo = base / "demo"
    if not (demo / "bids").exists():
        make_demo(demo, participants=args.participants, resolution=args.resolution,
                  seed=0, anatomy=args.anatomy)  # fmt: skip
    results = {}
    runs = (("one at a time", ["--parallel-participants", "1"]), ("side by side", []))
    for label, extra in runs:
        load0 = os.getloadavg()[0]
        key = label.replace(" ", "_")
        wall = _run(demo, base / f"out_{key}", base / f"work_{key}", args.nprocs, extra)
        results[label] = wall
        print(
            f"{label:>14}: {wall:7.1f} s  (load {load0:.2f} -> {os.getloadavg()[0]:.2f}; "
            f"{_per_participant(base / f'out_{key}')})"
        )
    ratio = results["one at a time"] / results["side by side"]
    print(
        f"{args.participants} participants at {args.resolution:g} mm on {args.nprocs} "
        f"processes: side by side is {ratio:.2f}x the speed of one at a time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
