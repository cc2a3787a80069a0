"""Scratch, for a GPU session: where a new process's first training steps spend their time, the
speedrun's net and batch with plain torch (no Lightning: its 11-18 s import on the GPU machine
would drown the figures). One process, one variant (FIRST_STEPS_VARIANT):

- default: as the project runs;
- v7: TORCH_CUDNN_V8_API_DISABLED=1, cuDNN's older API, without v8's execution plans (torch may
  ignore it with cuDNN 9; `cudnn_version` in the output says which cuDNN ran);
- eager-modules: CUDA_MODULE_LOADING=EAGER (every kernel loaded at the context's start; lazy is
  CUDA's default);
- benchmark: torch.backends.cudnn.benchmark = True (each new shape times its algorithms).

(The environment variables are set by the driver, `run_first_steps.py`, before Python starts.)
Prints one JSON line: seconds from the process's start to each mark, each after a
torch.cuda.synchronize()."""

import os
import time

STARTED = time.perf_counter()
VARIANT = os.environ.get("FIRST_STEPS_VARIANT", "default")

import json  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from src.model import Net  # noqa: E402

marks: dict[str, float] = {"torch_imported": time.perf_counter() - STARTED}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU: only to try the scripts


def mark(name: str) -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    marks[name] = round(time.perf_counter() - STARTED, 4)


if VARIANT == "benchmark":
    torch.backends.cudnn.benchmark = True
torch.zeros(1, device=DEVICE)
mark("context")
net = Net(channels=[16, 16, 32, 32, 64, 64], batch_norm=True).to(DEVICE)
optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
images = torch.zeros(256, 1, 28, 28, device=DEVICE)
labels = torch.zeros(256, dtype=torch.long, device=DEVICE)
mark("net_on_device")
for step in (1, 2, 3):
    loss = F.nll_loss(net(images), labels)
    if step == 1:
        mark("step1_forward")
    optimizer.zero_grad()
    loss.backward()
    if step == 1:
        mark("step1_backward")
    optimizer.step()
    mark(f"step{step}")
net.eval()
with torch.no_grad():
    for step in (1, 2):
        net(images[:1000])
        mark(f"eval{step}")
print(
    "FIRST_STEPS "
    + json.dumps({"variant": VARIANT, "cudnn_version": torch.backends.cudnn.version(), **marks})
)
