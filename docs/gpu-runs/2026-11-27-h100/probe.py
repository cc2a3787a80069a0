"""GPU probe: where the speedrun's ~5 ms a step goes. Scratch, not part of the project."""

import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, os.getcwd())
sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))
import lightning as L  # noqa: E402
import torch  # noqa: E402

from benchmark import clock, config  # noqa: E402
from src.config import instantiate  # noqa: E402
from src.console import quiet_framework  # noqa: E402
from src.data import MNISTDataModule, TensorBatches  # noqa: E402
from src.module import build_optimization  # noqa: E402
from src.train import train  # noqa: E402

OUT = Path(os.environ.get("OUT", "/tmp/probe"))
OUT.mkdir(parents=True, exist_ok=True)
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
QUICK = bool(os.environ.get("PROBE_QUICK"))
results: dict = {}
quiet_framework()

cfg = config("experiment=speedrun")
dm: MNISTDataModule = instantiate(cfg.data)
dm.prepare_data()
dm.setup()
train_images, train_labels = (t.to(dev) for t in dm.splits["train"])


def batches():
    return TensorBatches(train_images, train_labels, 256, shuffle=True, seed=0, drop_last=True)


def bare(name, compile_mode=None, fused=False, channels_last=False, cudnn_bench=False,
         compiled_opt=False,
         steps=None, warmup=None, phases=False, profile=False):
    steps = steps or (3 if QUICK else 150)
    warmup = warmup or (2 if QUICK else 30)
    torch.backends.cudnn.benchmark = cudnn_bench
    L.seed_everything(0, verbose=False)
    module = instantiate(cfg.model, _convert_="all", compile=False).to(dev)
    net = module.net
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if compile_mode:
        net.compile(mode=compile_mode)
    opt_cfg = dict(module.hparams.optimizer)
    if fused:
        opt_cfg["fused"] = True
    optimizer, scheduler = build_optimization(net.parameters(), opt_cfg,
                                              module.hparams.scheduler, 214 * 4)
    if compiled_opt:  # the PyTorch recipe: a tensor lr, optimizer + scheduler step compiled
        optimizer = torch.optim.Adam(net.parameters(), lr=torch.tensor(0.02, device=dev),
                                     capturable=dev.type == "cuda")
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.02,
                                                        total_steps=214 * 4)

        @torch.compile(fullgraph=False)
        def opt_and_sched():
            optimizer.step()
            scheduler.step()
    it = iter(batches())

    def next_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(batches())
            return next(it)

    def step():
        x, y = next_batch()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.nll_loss(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        if compiled_opt:
            opt_and_sched()
        else:
            optimizer.step()
            scheduler.step()

    t0 = clock()
    step()
    first = clock() - t0
    for _ in range(warmup):
        step()
    times = []
    for _ in range(3):
        t0 = clock()
        for _ in range(steps):
            step()
        times.append((clock() - t0) / steps * 1000)
    r = {"first_step_s": first, "ms_per_step": statistics.median(times), "repeats": times}
    if phases:  # each phase with a sync after it: host + GPU of each, serial
        acc = {"batch": 0.0, "forward": 0.0, "backward": 0.0, "zero_grad": 0.0, "opt_step": 0.0,
               "sched_step": 0.0}
        n = 3 if QUICK else 50
        for _ in range(n):
            t = clock(); x, y = next_batch(); t1 = clock(); acc["batch"] += t1 - t
            loss = torch.nn.functional.nll_loss(net(x), y); t2 = clock(); acc["forward"] += t2 - t1
            optimizer.zero_grad(); t3 = clock(); acc["zero_grad"] += t3 - t2
            loss.backward(); t4 = clock(); acc["backward"] += t4 - t3
            optimizer.step(); t5 = clock(); acc["opt_step"] += t5 - t4
            scheduler.step(); t6 = clock(); acc["sched_step"] += t6 - t5
        r["phases_ms"] = {k: v / n * 1000 for k, v in acc.items()}
    if profile:
        from torch.profiler import ProfilerActivity, profile as prof_ctx
        with prof_ctx(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])) as prof:
            for _ in range(3 if QUICK else 20):
                step()
            clock()
        ka = prof.key_averages()
        gpu_us = sum(getattr(e, "self_device_time_total", 0) for e in ka)
        r["gpu_kernel_ms_per_step"] = gpu_us / (3 if QUICK else 20) / 1000
        r["cuda_launches_per_step"] = sum(
            e.count for e in ka if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cudaGraphLaunch")) / 20
        r["graph_launches_per_step"] = sum(e.count for e in ka if e.key == "cudaGraphLaunch") / 20
        (OUT / f"prof_{name}.txt").write_text(
            ka.table(sort_by="self_device_time_total", row_limit=25))
    results.setdefault("bare", {})[name] = r
    print(name, json.dumps(r), flush=True)
    (OUT / "probe.json").write_text(json.dumps(results, indent=1))


class Phases(L.Callback):
    def __init__(self):
        self.t = {}

    def mark(self, key):
        self.t.setdefault(key, clock())

    def on_fit_start(self, *a): self.mark("fit_start")
    def on_train_start(self, *a): self.mark("train_start")

    def on_train_batch_start(self, trainer, pl, batch, i):
        if i == 0:
            self.mark("batch0_start")

    def on_train_batch_end(self, trainer, pl, out, batch, i):
        if i == 0:
            self.mark("batch0_end")
        if i == 10:
            self.mark("batch10_end")
        if i == trainer.num_training_batches - 1:
            self.mark("last_end")

    def on_validation_start(self, *a): self.mark("val_start")

    def on_validation_batch_end(self, trainer, pl, out, batch, i, *rest):
        if i == 0:
            self.mark("val_batch0_end")

    def on_validation_end(self, *a): self.mark("val_end")
    def on_fit_end(self, *a): self.mark("fit_end")

    def on_train_epoch_end(self, trainer, *a):
        self.batches = trainer.num_training_batches

    def summary(self):
        trainer_batches = self.batches
        t, keys = self.t, list(self.t)
        s = {f"{a}->{b}": round(t[b] - t[a], 4) for a, b in zip(keys, keys[1:])}
        if "batch10_end" in t and "last_end" in t:
            s["ms_per_step_11_to_last"] = round((t["last_end"] - t["batch10_end"]) / (trainer_batches - 11) * 1000, 3)
        s["fit"] = round(t["fit_end"] - t["fit_start"], 4)
        return s


def lightning(name, *overrides):
    with tempfile.TemporaryDirectory() as tmp:
        ph = Phases()
        c = config("experiment=speedrun", f"paths.output_dir={tmp}", *overrides,
                   *os.environ.get("PROBE_EXTRA", "").split())
        res = train(c, extra_callbacks=[ph])
        r = {**ph.summary(), "test_acc": res["test_acc"], "val_acc": res["metrics"].get("val/acc")}
    results.setdefault("lightning", {}).setdefault(name, []).append(r)
    print(name, json.dumps(r), flush=True)
    (OUT / "probe.json").write_text(json.dumps(results, indent=1))


def attempt(f, *a, **k):
    try:
        f(*a, **k)
    except Exception:
        traceback.print_exc()
        results.setdefault("errors", []).append(f"{a} {k}: {traceback.format_exc()[-600:]}")


which = sys.argv[1:] or ["bare", "lightning"]
t_start = time.time()
if "bare" in which:
    attempt(bare, "eager", phases=True, profile=True)
    attempt(bare, "eager_fused", fused=True)
    attempt(bare, "eager_cudnn_bench", cudnn_bench=True)
    attempt(bare, "eager_channels_last", channels_last=True)
    attempt(bare, "reduce_overhead", compile_mode="reduce-overhead", phases=True, profile=True)
    attempt(bare, "reduce_overhead_fused", compile_mode="reduce-overhead", fused=True)
    attempt(bare, "default_compile", compile_mode="default", profile=True)
    torch.backends.cudnn.benchmark = False
if "lightning" in which:
    for _ in range(2):
        attempt(lightning, "speedrun")
    for _ in range(2):
        attempt(lightning, "eager", "model.compile=false")
    for _ in range(2):
        attempt(lightning, "fused", "+model.optimizer.fused=true")
    attempt(lightning, "no_progress_bar", "callbacks.progress_bar=null")
    attempt(lightning, "no_logger", "logger=none")
    attempt(lightning, "eager_eval", "model.compile_eval=false")
    attempt(lightning, "bf16", "trainer.precision=bf16-mixed")
if "bare" in which:
    attempt(bare, "ro_compiled_opt", compile_mode="reduce-overhead", compiled_opt=True, profile=True)
results["probe_s"] = time.time() - t_start
(OUT / "probe.json").write_text(json.dumps(results, indent=1))
print("PROBE DONE", round(results["probe_s"], 1), "s")
