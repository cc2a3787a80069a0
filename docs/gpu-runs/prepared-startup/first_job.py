"""Scratch, for a GPU session: runs `variant_main.py` (the speedrun's first job in a new process)
for each start-up variant, alternately, `--rounds` times, and prints each run's fit time,
wall time (result.json), the whole process's time and test accuracy, then the medians."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def run(variant: str, out: Path, extra: list[str]) -> dict:
    run_dir = out / f"{variant}-{time.time_ns()}"
    command = [sys.executable, str(HERE / "variant_main.py"), "experiment=speedrun", "seed=0",
               f"paths.output_dir={run_dir}", f"hydra.run.dir={run_dir}", *extra]  # fmt: skip
    begun = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90,
                              env={**os.environ, "STARTUP_VARIANT": variant})  # fmt: skip
    except subprocess.TimeoutExpired as err:  # a hung start must not take the others' time
        stderr = err.stderr.decode() if isinstance(err.stderr, bytes) else err.stderr or ""
        done = subprocess.CompletedProcess(command, 124, "", stderr)
    outside = time.perf_counter() - begun
    marks = next((json.loads(line[6:]) for line in done.stderr.splitlines()
                  if line.startswith("MARKS ")), {})  # fmt: skip
    result_file = run_dir / "result.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
    return {"variant": variant, "rc": done.returncode, "outside_s": round(outside, 3),
            "fit_time_s": result.get("fit_time_s"), "wall_time_s": result.get("wall_time_s"),
            "test_acc": result.get("test_acc"), **marks}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="baseline,nofreeze,late,early,nocudnn,early-nocudnn")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp/out"))
    parser.add_argument("extra", nargs="*", help="overrides for every run")
    args = parser.parse_args()
    out = Path(args.out) / "first-job-runs"
    out.mkdir(parents=True, exist_ok=True)
    variants = args.variants.split(",")
    # the libraries into the disk cache, cuDNN's included, so that the first timed process
    # does not pay for reading them where the later ones do not
    warm_disk = (
        "import torch, lightning, hydra\n"
        "if torch.cuda.is_available():\n"
        "    x = torch.ones(1, 1, 3, 3, device='cuda')\n"
        "    torch.nn.functional.conv2d(x, x).sum().item()\n"
    )
    subprocess.run([sys.executable, "-c", warm_disk], cwd=ROOT, timeout=120)
    rows = []
    for round_ in range(args.rounds):
        turn = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
        for variant in turn:
            rows.append(run(variant, out, args.extra))
            print(json.dumps(rows[-1]), flush=True)
    (Path(args.out) / "first-job.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{'variant':14} {'fit s':>6} {'wall s':>6} {'process s':>9} {'step 1 at':>9} test acc")
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant and r["rc"] == 0]
        if not mine:
            print(f"{variant:14} failed")
            continue
        keys = ("fit_time_s", "wall_time_s", "outside_s", "first_step_done_at")
        fit, wall, outside, first = (median(mine, key) for key in keys)
        print(
            f"{variant:14} {fit:6.2f} {wall:6.2f} {outside:9.2f} {first:9.2f} "
            f"{[r['test_acc'] for r in mine]}"
        )


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows if r.get(key) is not None)


if __name__ == "__main__":
    main()
