from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from src.sweep import gather, read_results, summary

from .helpers import CONF_DIR, ROOT, TINY, read_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sweep(
    tmp_path: Path, data_dir: Path, *overrides: str, fdr: bool = True
) -> tuple[subprocess.CompletedProcess, Path]:
    """`python -m src.train -m ...` as a user types it, with fast_dev_run-sized jobs (or, with
    fdr=False, one epoch of the tiny data, logged to TensorBoard)."""
    sweep_root = tmp_path / "multiruns"
    size = "debug=fdr" if fdr else "trainer.max_epochs=1"
    args = [
        sys.executable, "-m", "src.train", "-m", size, f"data.data_dir={data_dir}", *TINY,
        "data.offline_dir=null", "callbacks.progress_bar=null", f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={sweep_root}", *overrides,
    ]  # fmt: skip
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return result, sweep_root


@pytest.mark.slow  # a sweep of training runs, in a process of its own
def test_two_job_sweep_gathers_a_table_and_a_plot(tiny_data_dir: Path, tmp_path: Path) -> None:
    result, sweep_dir = sweep(tmp_path, tiny_data_dir, "model.channels=[4,8],[8,16]")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(sweep_dir / "results.csv")
    assert len(rows) == 2
    assert {r["overrides"] for r in rows} == {"model.channels=[4,8]", "model.channels=[8,16]"}
    assert all(r["status"] == "ok" for r in rows)
    for row in rows:
        job = json.loads((sweep_dir / row["job"] / "result.json").read_text())
        assert int(row["params"]) == job["params"] > 0
        assert int(row["macs"]) == job["macs"] > 0
        assert int(row["receptive_field"]) == job["receptive_field"] == 5
        assert float(row["test_acc"]) == job["test_acc"]
        assert float(row["val_acc_best"]) == job["val_acc_best"]
        assert int(row["epochs"]) == job["epochs"] and float(row["wall_time_s"]) > 0
    assert int(rows[0]["params"]) != int(rows[1]["params"])
    markdown = (sweep_dir / "results.md").read_text()
    assert markdown.startswith("| job | status | overrides |")
    accuracy = sorted(100 * float(r["test_acc"]) for r in rows)
    per_epoch = sorted(float(r["wall_time_s"]) / int(r["epochs"]) for r in rows)
    line = (
        f"2 finished jobs: test accuracy mean {sum(accuracy) / 2:.2f}%, min {accuracy[0]:.2f}%, "
        f"max {accuracy[1]:.2f}%; wall time per epoch {sum(per_epoch) / 2:.1f} s (median)"
    )
    assert markdown.rstrip().endswith(line) and line in result.stdout
    assert (sweep_dir / "accuracy.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "sweep results" in result.stdout and "model.channels=[8,16]" in result.stdout
    # gathered again by hand (e.g. after an interrupted sweep)
    (sweep_dir / "results.csv").unlink()
    again = subprocess.run(
        [sys.executable, "-m", "src.sweep", str(sweep_dir)], cwd=ROOT, capture_output=True
    )
    assert again.returncode == 0 and read_csv(sweep_dir / "results.csv") == rows


@pytest.mark.slow  # a sweep of training runs, in a process of its own
def test_failed_and_diverged_jobs_are_rows_and_the_others_go_on(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    result, sweep_dir = sweep(
        tmp_path, tiny_data_dir, "model.channels=[8,16],[16,-4]", "model.optimizer.lr=0.05,1e30",
        "model.batch_norm=false", "model/scheduler=none", "callbacks.kernels=null",
        "callbacks.activations=null", fdr=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["overrides"]: r for r in read_csv(sweep_dir / "results.csv")}
    assert rows["model.channels=[8,16] model.optimizer.lr=0.05"]["status"] == "ok"
    failed = rows["model.channels=[16,-4] model.optimizer.lr=0.05"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith(
        "model.channels=[16, -4]: must be a non-empty list of positive"
    )
    diverged = rows["model.channels=[8,16] model.optimizer.lr=1e+30"]  # as Hydra writes it
    assert diverged["status"] == "diverged" and "lower model.optimizer.lr" in diverged["error"]
    assert "job 2 failed" in result.stdout and "job 1 diverged" in result.stdout
    # the mean is over the one finished job, and the summary says what it left out
    assert "1 finished jobs" in result.stdout and "1 diverged" in result.stdout


@pytest.mark.slow  # a sweep of training runs, in a process of its own
def test_every_job_is_in_the_hparams_tab(tiny_data_dir: Path, tmp_path: Path) -> None:
    result, sweep_dir = sweep(tmp_path, tiny_data_dir, "model.channels=[4,8],[8,16]", fdr=False)
    assert result.returncode == 0, result.stderr[-3000:]
    channels = set()
    for job in ("0", "1"):
        events = EventAccumulator(str(sweep_dir / job / "tensorboard"))
        events.Reload()
        plugin = events.PluginTagToContent("hparams")
        start = HParamsPluginData.FromString(plugin["_hparams_/session_start_info"])
        channels.add(start.session_start_info.hparams["01 channels"].string_value)
        assert "val/acc_best" in events.Tags()["scalars"]
    assert channels == {"[4, 8]", "[8, 16]"}


@pytest.mark.slow  # a sweep of training runs, in a process of its own
def test_parallel_jobs_through_the_joblib_launcher(tiny_data_dir: Path, tmp_path: Path) -> None:
    result, sweep_dir = sweep(
        tmp_path, tiny_data_dir, "model.channels=[4,8],[8,16]",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    rows = read_csv(sweep_dir / "results.csv")
    assert sorted(r["job"] for r in rows) == ["0", "1"]
    assert all(r["status"] == "ok" for r in rows)


@pytest.mark.slow  # two sweeps, each in a process of its own
def test_default_sweep_dirs_never_collide(tiny_data_dir: Path, tmp_path: Path) -> None:
    # Two sweeps started together from another folder, with the default paths: each gets its
    # own logs/train/multiruns/<date>_<time>_<microseconds>/ there.
    args = [
        sys.executable, "-m", "src.train", "-m", "debug=fdr", f"data.data_dir={tiny_data_dir}",
        *TINY, "data.offline_dir=null", "callbacks.progress_bar=null", "model.channels=[4]",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sweeps = [
        subprocess.Popen(
            args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in sweeps] == [0, 0]
    dirs = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(dirs) == 2
    assert all((d / "results.csv").is_file() and (d / "0" / "result.json").is_file() for d in dirs)


def fake_job(sweep_dir: Path, job: str, overrides: list[str], result: dict | str | None) -> None:
    """A job directory as Hydra and src/train.py leave it: .hydra/overrides.yaml at job start,
    result.json at the end (a dict as JSON, a string as written, None for none at all)."""
    hydra_dir = sweep_dir / job / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if isinstance(result, dict):
        result = json.dumps({"overrides": overrides, **result})
    if result is not None:
        (sweep_dir / job / "result.json").write_text(result)


def finished(test_acc: float, params: int) -> dict:
    return {
        "status": "ok", "params": params, "macs": 10 * params, "receptive_field": 5,
        "val_acc_best": test_acc - 0.01, "test_acc": test_acc, "epochs": 2, "fit_time_s": 3.0,
        "wall_time_s": 4.0,
    }  # fmt: skip


def fake_sweep(sweep_dir: Path) -> None:
    """Three finished jobs, one diverged, one interrupted, one SIGKILLed (no result.json) and one
    killed while writing result.json (broken JSON)."""
    lr = "model.optimizer.lr"
    fake_job(sweep_dir, "0", [f"{lr}=0.01", "seed=1"], finished(0.97, 1000))
    fake_job(sweep_dir, "1", [f"{lr}=0.02", "seed=1"], finished(0.99, 2000))
    diverged = {"status": "diverged", "error": "loss is nan at step 12: lower the lr"}
    fake_job(sweep_dir, "2", [f"{lr}=10", "seed=1"], {**diverged, "wall_time_s": 1.0})
    fake_job(sweep_dir, "3", [f"{lr}=0.03", "seed=1"], finished(0.95, 3000))
    interrupted = {"status": "interrupted", "error": "interrupted by SIGTERM at epoch 2"}
    fake_job(sweep_dir, "4", [f"{lr}=0.04", "seed=1"], {**interrupted, "wall_time_s": 2.0})
    fake_job(sweep_dir, "5", [f"{lr}=0.05", "seed=1"], None)
    fake_job(sweep_dir, "10", [f"{lr}=0.06", "seed=1"], '{"overrides": ["model.opt')


def test_killed_and_broken_jobs_are_missing_rows(tmp_path: Path) -> None:
    fake_sweep(tmp_path)
    rows = read_results(tmp_path)
    # ok jobs best first, then the others by job number (10 after 5)
    assert [(r["job"], r["status"]) for r in rows] == [
        ("1", "ok"), ("0", "ok"), ("3", "ok"), ("2", "diverged"), ("4", "interrupted"),
        ("5", "missing"), ("10", "missing"),
    ]  # fmt: skip
    by_job = {r["job"]: r for r in rows}
    # seed=1 is shared by all jobs, so only the lr is shown, read from .hydra for missing jobs
    assert by_job["5"]["overrides"] == "model.optimizer.lr=0.05"
    assert by_job["10"]["overrides"] == "model.optimizer.lr=0.06"
    assert by_job["5"]["error"] == "no result.json: the job was killed or is still running"
    assert by_job["10"]["error"].startswith("unreadable result.json")
    assert by_job["2"]["error"] == "loss is nan at step 12: lower the lr"
    assert by_job["5"]["test_acc"] is None and by_job["5"]["params"] is None


def test_the_summary_counts_only_finished_jobs_and_says_what_it_left_out(tmp_path: Path) -> None:
    fake_sweep(tmp_path)
    line = summary(read_results(tmp_path))
    assert line == (
        "3 finished jobs: test accuracy mean 97.00%, min 95.00%, max 99.00%; "
        "wall time per epoch 2.0 s (median); left out: 1 diverged, 1 interrupted, 2 missing"
    )


def test_gather_writes_every_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_sweep(tmp_path)
    rows = gather(tmp_path)
    assert len(rows) == 7
    written = read_csv(tmp_path / "results.csv")
    assert [(r["job"], r["status"]) for r in written] == [(r["job"], r["status"]) for r in rows]
    assert written[0]["test_acc"] == "0.99" and written[0]["params"] == "2000"
    assert written[5]["error"] == "no result.json: the job was killed or is still running"
    assert written[5]["test_acc"] == "" and written[5]["overrides"] == "model.optimizer.lr=0.05"
    markdown = (tmp_path / "results.md").read_text().splitlines()
    assert markdown[0].startswith("| job | status | overrides |")
    assert markdown[2].startswith("| 1 | ok | model.optimizer.lr=0.02 | 2,000 |")
    assert markdown[7].startswith("| 5 | missing | model.optimizer.lr=0.05 |")
    assert markdown[-1].endswith("left out: 1 diverged, 1 interrupted, 2 missing")
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == PNG_SIGNATURE
    out = capsys.readouterr().out
    assert "job 2 diverged: loss is nan at step 12: lower the lr" in out
    assert "job 4 interrupted: interrupted by SIGTERM at epoch 2" in out
    assert "job 5 missing: no result.json" in out and "job 10 missing: unreadable" in out
    assert "failed" not in out


def test_gather_with_only_missing_jobs(tmp_path: Path) -> None:
    fake_job(tmp_path, "0", ["model.channels=[4,8]"], None)
    fake_job(tmp_path, "1", ["model.channels=[8,16]"], "")
    rows = gather(tmp_path)
    assert [(r["job"], r["status"]) for r in rows] == [("0", "missing"), ("1", "missing")]
    assert [r["overrides"] for r in read_csv(tmp_path / "results.csv")] == [
        "model.channels=[4,8]", "model.channels=[8,16]",
    ]  # fmt: skip
    summary_line = (tmp_path / "results.md").read_text().splitlines()[-1]
    assert summary_line == "no finished job with a test accuracy; left out: 2 missing"
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == PNG_SIGNATURE
    # and by hand, as after a sweep that was killed
    again = subprocess.run(
        [sys.executable, "-m", "src.sweep", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert "job 0 missing: no result.json" in again.stdout
    assert "left out: 2 missing" in again.stdout


def test_an_empty_sweep_dir_gathers_nothing(tmp_path: Path) -> None:
    assert gather(tmp_path) == []
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["experiment=channels_sweep"], {"model.channels"}),
        (["hparams_search=lr_batch"], {"model.optimizer.lr", "data.batch_size"}),
        (["experiment=pooling_study"], {"model.pools"}),
    ],
)
def test_sweep_presets_compose(overrides: list[str], expected: set[str]) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train.yaml", overrides=overrides, return_hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert set(cfg.hydra.sweeper.params) == expected


@pytest.mark.slow  # a sweep of training runs, in a process of its own
def test_a_tiny_pooling_study_runs_to_a_table_and_plots(tiny_data_dir: Path, tmp_path: Path):
    result, sweep_dir = sweep(
        tmp_path, tiny_data_dir, "experiment=pooling_study", "callbacks.kernels=null",
        "callbacks.activations=null", "callbacks.test_views=null",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["overrides"]: r for r in read_csv(sweep_dir / "results.csv")}
    fields = {"model.pools=[]": 13, "model.pools=[1,2]": 42, "model.pools=[2,4]": 32,
              "model.pools=[4,5]": 24}  # fmt: skip
    assert set(rows) == set(fields)
    for overrides, field in fields.items():
        row = rows[overrides]
        assert row["status"] == "ok" and int(row["receptive_field"]) == field
        assert float(row["rf_fraction"]) == pytest.approx(field / 28, abs=1e-3)
        assert int(row["params"].replace(",", "")) == 18_482
        shifted = [float(row[f"shift_acc_{k}px"]) for k in (1, 2, 3, 4)]
        assert all(0 <= a <= 1 for a in shifted)
    figure = Image.open(sweep_dir / "accuracy.png")
    assert figure.size == (1800, 500)  # three panels: parameters, receptive field, shift
