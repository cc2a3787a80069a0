"""Scratch (device call 1): the benchmark's bare loop against Lightning, default net, eager and with
CUDA graphs (and fused optimizer step), 3 repeats each, in one process."""
import argparse, json, sys, tempfile
from pathlib import Path
sys.path.insert(0, "scripts")
import benchmark as b
import torch
from src.console import quiet_framework
quiet_framework()
args = argparse.Namespace(steps=300, warmup=20, repeats=3)
device = torch.device("cuda")
variants = {
    "eager": (),
    "graphs": ("model.compile=true", "model.compile_mode=cuda-graphs"),
    "graphs_fused": ("model.compile=true", "model.compile_mode=cuda-graphs", "+model.optimizer.fused=true"),
    "graphs_b256": ("model.compile=true", "model.compile_mode=cuda-graphs", "data.batch_size=256"),
}
with tempfile.TemporaryDirectory() as tmp:
    for name, overrides in variants.items():
        try:
            r = b.compare_loops(b.config(*overrides), args, device, Path(tmp) / name, overrides)
            print("LOOPS", json.dumps({"variant": name, **r}), flush=True)
        except Exception as err:
            print("LOOPS", json.dumps({"variant": name, "error": repr(err)}), flush=True)
