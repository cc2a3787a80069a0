from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_benchmark_script_measures_and_saves(tmp_path: Path, offline_dir: Path) -> None:
    out = tmp_path / "benchmark.json"
    args = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--repeats", "1",
            "--steps", "12", "--warmup", "2", "--out", str(out),
            # a small, short speedrun, still compiled: the row's machinery, not its accuracy
            "--speedrun-overrides", "model.channels=[8,16,16]", "trainer.max_epochs=1"]  # fmt: skip
    env = {"MNIST_OFFLINE_DIR": str(offline_dir), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads(out.read_text())
    loader, throughput, fast = saved["loader"], saved["throughput"], saved["time_to_99_fast"]
    speedrun = saved["time_to_99_speedrun"]
    assert loader["batches"] == 430 and loader["speedup"] > 1
    assert loader["speedup"] == pytest.approx(loader["tutorial_epoch_s"] / loader["fast_epoch_s"])
    assert len(throughput["bare_img_s"]) == len(throughput["lightning_img_s"]) == 1
    assert throughput["ratio"] == pytest.approx(
        throughput["lightning_median"] / throughput["bare_median"]
    )
    assert fast["epochs"] == 2 and fast["params"] == 18_482 and fast["test_acc"] >= 0.99
    # the compiled preset through Lightning and the same recipe as a bare loop
    assert speedrun["epochs"] == 1 and 0.5 < speedrun["test_acc"] <= 1
    assert speedrun["bare"]["fit_s"] > 0 and 0.5 < speedrun["bare"]["test_acc"] <= 1
    assert saved["device"].startswith("CPU")
    assert "experiment=speedrun" in result.stdout
