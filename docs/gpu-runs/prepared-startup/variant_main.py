"""Scratch, for a GPU session: `python -m src.train` with one start-up variant (STARTUP_VARIANT),
to see whether the first job of a new process can hide CUDA's start-up (context about 0.34 s, the
first conv with batch norm about 0.65 s on an H100) behind the run's own set-up.

- baseline: the project as it is.
- late: a thread starts CUDA and runs a conv + batch norm forward and backward (zeros, no random
  numbers) as `train()` begins, beside the config check and the building of data, model and
  trainer (what the project could do itself).
- early: the same thread, started right after `import torch`, before Lightning and Hydra load
  (an upper bound: the project would have to start it before it knows the config).
- nofreeze: without `gc.freeze()` after the imports (src/startup.py, which the project's
  commands call since 2026-11-27's fourth session; every other variant calls it).
- nocudnn, early-nocudnn: torch.backends.cudnn.enabled = False (no cuDNN to load; ATen's own
  convolutions), alone and with the early thread.
- nowarm (for the fifth session's call 2, at 9bf3bd2, where the project started CUDA in a
  thread itself, src/cuda_warmup.py, since taken out): the project without that thread.
Prints one JSON line with this process's clock marks."""

import os
import time

STARTED = time.perf_counter()
VARIANT = os.environ.get("STARTUP_VARIANT", "baseline")

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

marks: dict[str, float] = {"torch_imported": time.perf_counter() - STARTED}


def warm_cuda() -> None:
    begun = time.perf_counter()
    x = torch.zeros(256, 1, 28, 28, device="cuda", requires_grad=True)
    marks["warm_context_s"] = time.perf_counter() - begun
    w1 = torch.zeros(16, 1, 3, 3, device="cuda", requires_grad=True)
    w2 = torch.zeros(16, 16, 3, 3, device="cuda", requires_grad=True)
    y = F.relu(F.batch_norm(F.conv2d(x, w1, padding=1), None, None, training=True))
    F.conv2d(y, w2, padding=1).sum().backward()
    torch.cuda.synchronize()
    marks["warm_done_at"] = time.perf_counter() - STARTED


warming: list[threading.Thread] = []


def start_warming() -> None:
    marks["warm_started_at"] = time.perf_counter() - STARTED
    warming.append(threading.Thread(target=warm_cuda, daemon=True))
    warming[0].start()


if "nocudnn" in VARIANT:
    torch.backends.cudnn.enabled = False
if VARIANT.startswith("early"):
    start_warming()

import hydra  # noqa: E402
import lightning as L  # noqa: E402

import src.train as entry  # noqa: E402
from src.config import run_hydra_main  # noqa: E402
from src.startup import freeze_imported  # noqa: E402

marks["imports_done"] = time.perf_counter() - STARTED
original_train = entry.train
if VARIANT == "nowarm":
    entry.warm_up_cuda = lambda trainer: None


def train(cfg, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
    marks["train_started_at"] = time.perf_counter() - STARTED
    if VARIANT == "late":
        start_warming()
    return original_train(cfg, *args, **kwargs)


class Marks(L.Callback):
    def on_fit_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        marks.setdefault("fit_started_at", time.perf_counter() - STARTED)

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        # The first training step records the step as CUDA graphs, in torch's "global" capture
        # mode, where another thread's CUDA calls would spoil the recording: the warm-up must
        # be over by then. How long this waits is part of what the variant costs.
        if warming:
            waited = time.perf_counter()
            warming[0].join()
            marks["warm_wait_s"] = time.perf_counter() - waited

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx == 0:
            if torch.cuda.is_initialized():
                torch.cuda.synchronize()
            marks["first_step_done_at"] = time.perf_counter() - STARTED


def train_with_marks(cfg, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
    kwargs["extra_callbacks"] = [*kwargs.get("extra_callbacks", ()), Marks()]
    return train(cfg, *args, **kwargs)


entry.train = train_with_marks
# src.train's own main, with the config folder named in full: imported, not run as __main__,
# Hydra would look for `conf` as a Python package
conf = Path(entry.__file__).resolve().parents[1] / "conf"
main = hydra.main(version_base="1.3", config_path=str(conf), config_name="train.yaml")(
    entry.main.__wrapped__
)
if VARIANT != "nofreeze":
    freeze_imported()  # as `python -m src.train` does
try:
    run_hydra_main(main)
finally:
    marks["process_s"] = time.perf_counter() - STARTED
    print("MARKS " + json.dumps({"variant": VARIANT, **marks}), file=sys.stderr)
