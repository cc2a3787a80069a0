"""Scratch, for a GPU session: the benchmark's throughput row (bare loop against the project's
Trainer, default net, callbacks and logger, alternately, medians) at larger batches, eagerly
and with the step recorded as CUDA graphs with SGD's fused step. At batch 128 both loops are
bound by the host (the GPU busy about 1 ms of a 3-4 ms step); the question is at what batch
the GPU's work per step hides Lightning's 0.6-1.2 ms of Python, and the ratio reaches 0.90x.
Run from the project root:
  python docs/gpu-runs/prepared-ratio-by-batch/ratio_by_batch.py [--batches 128,512,2048]"""

import argparse
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import benchmark as b  # noqa: E402

RECORDED = ("model.compile=true", "model.compile_mode=cuda-graphs", "+model.optimizer.fused=true")
VARIANTS = {"eager": (), "graphs+fused": RECORDED}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="128,512,2048")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=300)
    args = parser.parse_args()
    b.quiet_framework()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(b.device_name(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (int(x) for x in args.batches.split(",")):
            for name, recipe in VARIANTS.items():
                overrides = (f"data.batch_size={batch}", *recipe)
                cfg = b.config(*overrides)
                # within one epoch, short of its last, shorter batch (run eagerly, timed as full)
                steps = min(args.max_steps, len(b.train_batches(cfg, device)) - 1)
                timing = SimpleNamespace(steps=steps, warmup=min(20, steps // 4),
                                         repeats=args.repeats)  # fmt: skip
                r = b.compare_loops(cfg, timing, device, Path(tmp) / f"{name}{batch}", overrides)
                bare_ms = 1000 * batch / r["bare_median"]
                lightning_ms = 1000 * batch / r["lightning_median"]
                print(f"batch {batch:5} {name:12} steps {steps:3} ratio {r['ratio']:.3f}  "
                      f"ms a step: bare {bare_ms:.3f}, Lightning {lightning_ms:.3f} "
                      f"(+{lightning_ms - bare_ms:.3f})  images/s bare "
                      f"{[round(x) for x in r['bare_img_s']]} Lightning "
                      f"{[round(x) for x in r['lightning_img_s']]}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
