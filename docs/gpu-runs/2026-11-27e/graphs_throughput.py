"""Scratch, for a GPU session: the benchmark's throughput row (bare loop against the project's
Trainer, default net, callbacks and logger, 300 steps after 20, alternately, medians) for the
default recipe as it is and with the training step recorded as CUDA graphs
(model.compile_mode=cuda-graphs), SGD's fused step, and both. Call 2 found both loops bound by
the host's time to issue ~115 GPU operations a step (the GPU busy 1.0 ms of a 3.1-4.0 ms
step): a recorded step issues two, so the GPU's time may become the step's, and Lightning's
Python could run while the GPU works.
Run from the project root: python docs/gpu-runs/2026-11-27e/graphs_throughput.py [--repeats N]"""

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import benchmark as b  # noqa: E402

GRAPHS = ("model.compile=true", "model.compile_mode=cuda-graphs")
FUSED = ("+model.optimizer.fused=true",)
VARIANTS = {"default": (), "graphs": GRAPHS, "fused": FUSED, "graphs+fused": GRAPHS + FUSED}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    b.quiet_framework()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(b.device_name(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in VARIANTS.items():
            cfg = b.config(*overrides)
            r = b.compare_loops(cfg, args, device, Path(tmp) / name, overrides)
            bare = [round(x) for x in r["bare_img_s"]]
            light = [round(x) for x in r["lightning_img_s"]]
            print(f"{name:13} bare {bare} Lightning {light} ratio {r['ratio']:.3f} "
                  f"ms a step: bare {1000 * r['batch_size'] / r['bare_median']:.3f}, "
                  f"Lightning {1000 * r['batch_size'] / r['lightning_median']:.3f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
