"""Scratch, for a GPU session: where Lightning's extra time a training step goes with the
default net (call 1 on an H100: bare loop 2.91 ms a step, Lightning 4.13 ms, +1.22 ms, while
the 1-conv net of the benchmark's "Lightning's own work" row adds only 0.57 ms, with the same
~750 more Python calls a step). For the bare loop of scripts/benchmark.py and for the project's
Trainer (default callbacks and logger), each timed alone, then under torch.profiler, for
STEPS steps after WARMUP: the wall time a step (no profiler), and per step under the profiler
the CUDA API calls by name (kernel launches, copies, syncs, event records), the kernels'
busy time on the GPU, and the ops with the most CPU time of their own.
Run from the project root: python docs/gpu-runs/2026-11-27e/step_profile.py [--out DIR]"""

import argparse
import sys
from collections import Counter
from pathlib import Path

import lightning as L
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import benchmark as b  # noqa: E402

from src.config import instantiate  # noqa: E402

WARMUP, STEPS = 30, 60
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ACTIVITIES = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE.type == "cuda" else [])


class ProfileSteps(L.Callback):
    """Starts `prof` at batch WARMUP's start and stops it at batch WARMUP + STEPS's start."""

    def __init__(self, prof) -> None:
        self.prof = prof

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == WARMUP:
            b.clock()
            self.prof.start()
        elif batch_idx == WARMUP + STEPS:
            b.clock()
            self.prof.stop()


def report(name: str, prof, out: Path) -> None:
    events = prof.key_averages()
    api = Counter()
    for e in events:
        if e.key.startswith("cuda") or e.key.startswith("cu"):
            api[e.key] += e.count
    busy_us = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA")
    kernels = sum(e.count for e in events if e.device_type.name == "CUDA")
    print(f"== {name}: per step, under the profiler ({STEPS} steps)")
    print(f"   GPU busy {busy_us / STEPS / 1000:.3f} ms, {kernels / STEPS:.1f} GPU activities")
    for key, count in api.most_common(12):
        print(f"   {key:40} {count / STEPS:7.2f}")
    table = events.table(sort_by="self_cpu_time_total", row_limit=25)
    (out / f"{name}-ops.txt").write_text(table)
    print("\n".join(table.splitlines()[:18]))
    prof.export_chrome_trace(str(out / f"{name}-trace.json"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/step-profile"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = b.config()
    batches = b.train_batches(cfg, DEVICE)
    steps = WARMUP + STEPS + 1
    for repeat in range(2):  # the wall times, alternately, no profiler
        L.seed_everything(0, verbose=False)
        module = instantiate(cfg.model, _convert_="all").to(DEVICE)
        bare = b.bare_loop(module, batches, steps, WARMUP)
        light = b.lightning_loop(steps, WARMUP, args.out / f"wall{repeat}")
        print(f"repeat {repeat}: ms a step: bare {1000 * batches.batch_size / bare:.3f}, "
              f"Lightning {1000 * batches.batch_size / light:.3f}", flush=True)  # fmt: skip
    module = instantiate(cfg.model, _convert_="all").to(DEVICE)
    b.bare_loop(module, batches, WARMUP, 0)
    with profile(activities=ACTIVITIES) as prof:
        b.bare_loop(module, batches, STEPS, 0)
        b.clock()
    report("bare", prof, args.out)
    prof = profile(activities=ACTIVITIES)
    b.lightning_loop(steps, WARMUP, args.out / "profiled", extra_callbacks=[ProfileSteps(prof)])
    report("lightning", prof, args.out)


if __name__ == "__main__":
    main()
