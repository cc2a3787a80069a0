"""Scratch, for a GPU session: runs `first_steps.py` in new processes, each variant in turn,
`--rounds` times, and prints the medians of each phase (seconds): the context, the net onto the
device, the first step's forward, backward and optimizer step, the second and third steps, and
the first two evaluation forwards."""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
ENVIRONMENT = {
    "default": {},
    "v7": {"TORCH_CUDNN_V8_API_DISABLED": "1"},
    "eager-modules": {"CUDA_MODULE_LOADING": "EAGER"},
    "benchmark": {},
}
PHASES = [  # (name, from mark, to mark)
    ("context", "torch_imported", "context"), ("net", "context", "net_on_device"),
    ("fwd1", "net_on_device", "step1_forward"), ("bwd1", "step1_forward", "step1_backward"),
    ("opt1", "step1_backward", "step1"), ("step2", "step1", "step2"), ("step3", "step2", "step3"),
    ("eval1", "step3", "eval1"), ("eval2", "eval1", "eval2"),
]  # fmt: skip


def run(variant: str) -> dict:
    env = {**os.environ, **ENVIRONMENT[variant], "FIRST_STEPS_VARIANT": variant}
    env["PYTHONPATH"] = f"{ROOT}:{env.get('PYTHONPATH', '')}"
    done = subprocess.run([sys.executable, str(HERE / "first_steps.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("FIRST_STEPS ")]
    if done.returncode != 0 or not lines:
        print(variant, "failed:", done.stderr[-2000:], file=sys.stderr)
        return {"variant": variant, "failed": True}
    return json.loads(lines[0][len("FIRST_STEPS ") :])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(ENVIRONMENT))
    args = parser.parse_args()
    variants = args.variants.split(",")
    run("default")  # the libraries into the disk cache, untimed
    rows = []
    for round_ in range(args.rounds):
        for variant in variants[round_ % len(variants) :] + variants[: round_ % len(variants)]:
            rows.append(run(variant))
            print(json.dumps(rows[-1]), flush=True)
    print(f"{'variant':14} " + " ".join(f"{name:>6}" for name, _, _ in PHASES) + "  cudnn")
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant and not r.get("failed")]
        if not mine:
            print(f"{variant:14} failed")
            continue
        cells = [statistics.median(r[end] - r[start] for r in mine) for _, start, end in PHASES]
        print(
            f"{variant:14} "
            + " ".join(f"{c:6.3f}" for c in cells)
            + f"  {mine[0]['cudnn_version']}"
        )


if __name__ == "__main__":
    main()
