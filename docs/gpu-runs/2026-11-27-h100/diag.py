"""Why does net.compile() not compile on the GPU machine? Scratch, not part of the project."""

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, os.getcwd())
sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))
import torch  # noqa: E402
import torch._dynamo.config as dynamo_config  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

from benchmark import clock, config  # noqa: E402
from src.config import instantiate  # noqa: E402
from src.console import quiet_framework  # noqa: E402

OUT = Path(os.environ.get("OUT", "/tmp/diag"))
OUT.mkdir(parents=True, exist_ok=True)
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
QUICK = bool(os.environ.get("PROBE_QUICK"))
res: dict = {"env": {k: v for k, v in os.environ.items()
                     if any(s in k for s in ("TORCH", "DYNAMO", "INDUCTOR", "TRITON", "CUDA"))},
             "disable": dynamo_config.disable, "suppress_errors": dynamo_config.suppress_errors,
             "python": sys.version, "torch": torch.__version__}
print(json.dumps(res), flush=True)
quiet_framework()


def save():
    (OUT / "diag.json").write_text(json.dumps(res, indent=1, default=str))


def kernels_of(fn):
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        clock()
    names = [e.key for e in prof.key_averages()]
    return {"triton": sum("triton" in n for n in names), "cudnn_bn": sum("cudnn_batch_norm" in n for n in names),
            "graph_launch": sum(e.count for e in prof.key_averages() if e.key == "cudaGraphLaunch"),
            "compiled_region": sum("Compiled" in n for n in names)}


def attempt(label, f):
    try:
        t = clock()
        r = f()
        r = {"s": round(clock() - t, 3), **(r or {})}
    except Exception:
        traceback.print_exc()
        r = {"error": traceback.format_exc()[-800:]}
    r["frames"] = dict(counters["frames"])
    r["stats"] = dict(counters["stats"])
    res[label] = r
    print(label, json.dumps(r, default=str), flush=True)
    save()


x = torch.randn(256, 1, 28, 28, device=dev)
y = torch.randint(0, 10, (256,), device=dev)
attempt("lambda", lambda: {"ok": bool(torch.compile(lambda t: t.sin() + 1)(x).isfinite().all())})
cfg = config("experiment=speedrun")


def fresh_net():
    torch.manual_seed(0)
    return instantiate(cfg.model, _convert_="all", compile=False).net.to(dev).train()


def variant(how, mode="reduce-overhead"):
    def run():
        net = fresh_net()
        if how == "module.compile":
            net.compile(mode=mode)
            call = net
        elif how == "torch.compile(net)":
            call = torch.compile(net, mode=mode)
        elif how == "compile forward":
            net.forward = torch.compile(net.forward, mode=mode)
            call = net
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01)

        def step():
            loss = torch.nn.functional.nll_loss(call(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        t = clock()
        step()
        first = clock() - t
        for _ in range(3 if QUICK else 20):
            step()
        n = 3 if QUICK else 100
        t = clock()
        for _ in range(n):
            step()
        ms = (clock() - t) / n * 1000
        return {"first_step_s": round(first, 3), "ms_per_step": round(ms, 3), **kernels_of(step)}
    return run


for how in ("module.compile", "torch.compile(net)", "compile forward"):
    attempt(how, variant(how))
# the same in a Lightning speedrun, Module.compile replaced by the variant that compiled (if any)
def compiled(h):
    return res.get(h, {}).get("compiled_region", 0) + res.get(h, {}).get("triton", 0) > 0


good = [h for h in ("compile forward", "torch.compile(net)") if compiled(h) and not compiled("module.compile")]
good = good or os.environ.get("FORCE_GOOD", "").split(",")[:1] if os.environ.get("FORCE_GOOD") else good
res["good"] = good
if good and not os.environ.get("NO_LIGHTNING"):
    from src.train import train
    original = torch.nn.Module.compile

    def compile_forward(self, *args, **kwargs):
        self.forward = torch.compile(self.forward, *args, **kwargs)
    torch.nn.Module.compile = compile_forward

    class FirstStep:
        pass

    import lightning as L

    class Phases(L.Callback):
        def __init__(self):
            self.t = {}

        def on_fit_start(self, *a): self.t["fit_start"] = clock()

        def on_train_batch_end(self, trainer, pl, out, batch, i):
            if i == 0:
                self.t["batch0_end"] = clock()
            if i == 10:
                self.t["batch10_end"] = clock()
            if i == trainer.num_training_batches - 1:
                self.t["last_end"] = clock()
                self.n = trainer.num_training_batches

        def on_fit_end(self, *a): self.t["fit_end"] = clock()

    for i in range(1 if QUICK else 3):
        def fit():
            ph = Phases()
            with tempfile.TemporaryDirectory() as tmp:
                r = train(config("experiment=speedrun", f"paths.output_dir={tmp}",
                                 *os.environ.get("PROBE_EXTRA", "").split()),
                          extra_callbacks=[ph])
            t = ph.t
            return {"fit": round(t["fit_end"] - t["fit_start"], 3),
                    "first_step": round(t["batch0_end"] - t["fit_start"], 3),
                    "ms_per_step_11_to_last": round((t["last_end"] - t["batch10_end"]) / (ph.n - 11) * 1000, 3),
                    "last_to_fit_end": round(t["fit_end"] - t["last_end"], 3),
                    "test_acc": r["test_acc"]}
        attempt(f"lightning_compile_forward_{i}", fit)
    torch.nn.Module.compile = original
print("DIAG DONE")
