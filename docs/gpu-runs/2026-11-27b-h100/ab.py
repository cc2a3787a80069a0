"""Scratch A/B: Lightning/bare throughput of the tree at argv[1] (default net and 1-conv net)."""
import argparse, json, os, sys, tempfile
from pathlib import Path
root = os.path.abspath(sys.argv[1])
sys.path[:0] = [root, root + "/scripts"]
os.chdir(root)
import benchmark as B  # noqa: E402
import torch  # noqa: E402
assert B.__file__.startswith(root), B.__file__
B.quiet_framework()
args = argparse.Namespace(steps=300, warmup=20, repeats=int(os.environ.get('REPEATS', 3)))
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
with tempfile.TemporaryDirectory() as tmp:
    default = B.compare_loops(B.config(), args, dev, Path(tmp) / "default")
    if os.environ.get("DEFAULT_ONLY"):
        print("AB", json.dumps({"root": sys.argv[1], "default": default}))
        sys.exit(0)
    tiny = B.compare_loops(B.config(*B.TINY_NET), args, dev, Path(tmp) / "tiny", B.TINY_NET)
    calls = B.python_calls(B.config(*B.TINY_NET), dev, 100, Path(tmp) / "calls", B.TINY_NET)
print("AB", json.dumps({"root": sys.argv[1], "default": default, "tiny": tiny, "calls": calls}))
