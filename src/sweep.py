"""Gathers a multirun sweep's results into one table and one plot, when the sweep ends.

Every job writes result.json into its own directory (src/train.py); `GatherResults`, a Hydra
callback, reads them all and writes results.csv, results.md and accuracy.png (accuracy against
parameters, receptive field and shift) into
the sweep directory, and prints the table and a summary line (mean, min and max test accuracy
over the finished jobs, the figures a sweep over seeds is run for, and wall time per epoch).
A job directory without a readable result.json (the job was killed, or is still running) is a
row too, with status `missing`, so that no job silently drops out of the table.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape
from rich.table import Table

log = logging.getLogger(__name__)

COLUMNS = (
    "job",
    "status",
    "overrides",
    "params",
    "macs",
    "receptive_field",
    "rf_fraction",
    "val_acc_best",
    "test_acc",
    "shift_acc_1px",
    "shift_acc_2px",
    "shift_acc_3px",
    "shift_acc_4px",
    "epochs",
    "fit_time_s",
    "wall_time_s",
    "error",
)


# The statuses src/train.py writes, and `missing` for a job without a readable result.json;
# the summary names what it left out in this order.
STATUSES = ("ok", "failed", "diverged", "interrupted", "missing")


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job directories: those Hydra started (.hydra/overrides.yaml is written at job
    start) and any other with a result.json."""
    found = {p.parents[1] for p in sweep_dir.glob("*/.hydra/overrides.yaml")}
    found |= {p.parent for p in sweep_dir.glob("*/result.json")}
    return sorted(found, key=lambda d: job_order(d.name))


def job_order(job: str) -> tuple[int, str]:
    # Numerically, so that job 10 comes after job 9.
    return (int(job), "") if job.isdigit() else (sys.maxsize, job)


def read_overrides(job_dir: Path) -> list[str]:
    """The job's overrides as Hydra saved them at job start; none if that file is unreadable."""
    try:
        overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in overrides] if isinstance(overrides, list) else []


def read_result(job_dir: Path) -> dict[str, Any]:
    """The job's result.json or, where there is none or it cannot be read (a SIGKILL can leave
    it absent or half written), a `missing` result with the overrides Hydra saved."""
    path = job_dir / "result.json"
    try:
        result = json.loads(path.read_text())
        if not isinstance(result, dict):
            raise ValueError("not a JSON object")
        return result
    except FileNotFoundError:
        error = "no result.json: the job was killed or is still running"
    except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        error = f"unreadable result.json ({err}): the job was killed while writing it?"
    return {"overrides": read_overrides(job_dir), "status": "missing", "error": error}


def read_results(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory, finished jobs best test accuracy first, then the others (failed,
    diverged, interrupted, missing) by job number. The overrides column keeps only what differs
    between jobs (what the sweep varied)."""
    results = {d.name: read_result(d) for d in job_dirs(sweep_dir)}
    if not results:
        return []
    shared = set.intersection(*(set(r.get("overrides") or []) for r in results.values()))
    rows = []
    for job, result in results.items():
        row = {key: result.get(key) for key in COLUMNS}
        row["job"] = job
        overrides = result.get("overrides") or []
        row["overrides"] = " ".join(o for o in overrides if len(results) == 1 or o not in shared)
        rows.append(row)

    def order(row: dict[str, Any]) -> tuple[bool, float, tuple[int, str]]:
        accuracy = (row["test_acc"] or row["val_acc_best"] or 0) if row["status"] == "ok" else 0
        return (row["status"] != "ok", -accuracy, job_order(row["job"]))

    return sorted(rows, key=order)


# What the console's table shows, under short headers (results.csv and .md have every column).
PRINTED = {
    "job": "job", "status": "status", "overrides": "overrides", "params": "params",
    "receptive_field": "RF", "rf_fraction": "RF/input", "val_acc_best": "val best",
    "test_acc": "test", "shift_acc_2px": "shift 2px", "shift_acc_4px": "shift 4px",
    "epochs": "epochs", "wall_time_s": "wall s",
}  # fmt: skip


def cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if column == "rf_fraction":
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def left_out(rows: list[dict[str, Any]]) -> str:
    """What the summary's figures leave out, and why: "1 diverged, 1 missing"; empty if nothing."""
    counts = Counter(str(r["status"]) for r in rows if r["status"] != "ok")
    statuses = [s for s in STATUSES if s in counts] + sorted(set(counts) - set(STATUSES))
    parts = [f"{counts[s]} {s}" for s in statuses]
    untested = sum(r["status"] == "ok" and r["test_acc"] is None for r in rows)
    if untested:  # finished, but run with test=false
        parts.append(f"{untested} ok without a test accuracy")
    return ", ".join(parts)


def summary(rows: list[dict[str, Any]]) -> str:
    """Test accuracy mean, min and max over the finished (`ok`) jobs, and their median wall time
    per epoch (a job's wall time, setup and test included, over its epochs); then which jobs
    were left out and why, since a mean over the survivors alone would flatter the sweep."""
    done = [r for r in rows if r["status"] == "ok" and r["test_acc"] is not None]
    skipped = left_out(rows)
    tail = f"; left out: {skipped}" if skipped else ""
    if not done:
        return "no finished job with a test accuracy" + tail
    accuracy = [100 * r["test_acc"] for r in done]
    per_epoch = statistics.median(r["wall_time_s"] / max(r["epochs"], 1) for r in done)
    return (
        f"{len(done)} finished jobs: test accuracy mean {statistics.mean(accuracy):.2f}%, "
        f"min {min(accuracy):.2f}%, max {max(accuracy):.2f}%; "
        f"wall time per epoch {per_epoch:.1f} s (median)" + tail
    )


def write_markdown(rows: list[dict[str, Any]], path: Path) -> None:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c], c) for c in COLUMNS) + " |" for row in rows]
    lines += ["", summary(rows)]
    path.write_text("\n".join(lines) + "\n")


SHIFT_COLUMNS = [c for c in COLUMNS if c.startswith("shift_acc_")]


def accuracy(row: dict[str, Any]) -> float:
    """Test accuracy in percent (the best validation accuracy when the job did not test)."""
    return 100 * (row["test_acc"] if row["test_acc"] is not None else row["val_acc_best"])


def job_label(row: dict[str, Any]) -> str:
    return " ".join(o.split("=", 1)[-1] for o in row["overrides"].split()) or row["job"]


def scatter(ax: Axes, done: list[dict[str, Any]], x: str) -> None:
    """One labelled point per job at (row[x], accuracy); labels alternate above and below so
    neighbours stay readable."""
    for i, row in enumerate(sorted(done, key=lambda r: r[x])):
        ax.scatter(row[x], accuracy(row), color="tab:blue")
        offset = (4, 6 if i % 2 == 0 else -12)
        ax.annotate(job_label(row), (row[x], accuracy(row)), xytext=offset,
                    textcoords="offset points", fontsize=7)  # fmt: skip
    ax.margins(x=0.25, y=0.1)  # room for the labels
    ax.grid(True, alpha=0.3)


def plot_accuracy(rows: list[dict[str, Any]], path: Path) -> None:
    """The finished (`ok`) jobs' test accuracy against their parameters, beside it against
    their receptive field (the input's side marked: to its left the last layer cannot see the
    whole digit), and, when the jobs measured it, test accuracy under shift, a line a job."""
    done = [r for r in rows if r["status"] == "ok" and r["params"]]
    shifted = [r for r in done if all(r[c] is not None for c in SHIFT_COLUMNS)]
    panels = 3 if shifted else 2
    figure = Figure(figsize=(6 * panels, 5), dpi=100)
    by_params, by_field, *by_shift = figure.subplots(1, panels)
    varied = sorted({o.split("=", 1)[0] for r in done for o in r["overrides"].split()})
    figure.suptitle(f"sweep over {', '.join(varied) or 'jobs'}: test accuracy (%)")
    if not done:  # still a figure, so that the sweep directory always has one
        by_params.text(0.5, 0.5, "no finished job", ha="center", va="center",
                       transform=by_params.transAxes)  # fmt: skip
    else:
        scatter(by_params, done, "params")
        by_params.set_xscale("log")
        scatter(by_field, done, "receptive_field")
        first = done[0]
        side = first["receptive_field"] / first["rf_fraction"] if first["rf_fraction"] else 28
        by_field.axvline(side, color="tab:red", linestyle="--", linewidth=1)
        by_field.text(side, 0.02, f" input {side:.0f}px", color="tab:red", fontsize=8,
                      transform=by_field.get_xaxis_transform())  # fmt: skip
    by_params.set(xlabel="parameters", ylabel="test accuracy (%)", title="vs parameters")
    by_field.set(xlabel="receptive field of the last conv (pixels)", title="vs receptive field")
    for ax in by_shift:
        for row in shifted:
            curve = [row["test_acc"]] + [row[c] for c in SHIFT_COLUMNS]
            ax.plot(range(len(curve)), [100 * a for a in curve], marker="o", label=job_label(row))
        ax.set(xlabel="every test image shifted by (pixels, each way)", title="under shift")
        ax.set_xticks(range(len(SHIFT_COLUMNS) + 1))
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    for column, header in PRINTED.items():
        right = column not in ("job", "status", "overrides")
        table.add_column(header, justify="right" if right else "left", overflow="fold")
    for row in rows:
        style = None if row["status"] == "ok" else "red"
        table.add_row(*(cell(row[c], c) for c in PRINTED), style=style)
    console = Console(width=None if Console().is_terminal else 160)
    console.print(table)
    for row in rows:
        if row["status"] != "ok":
            # escaped: an error often quotes an override like model.channels=[16, -4]
            what = escape(f"job {row['job']} {row['status']}:")
            console.print(f"[red]{what}[/] {escape(str(row['error']))}")
    console.print(summary(rows))


def gather(sweep_dir: Path) -> list[dict[str, Any]]:
    """Writes results.csv, results.md and accuracy.png into `sweep_dir` from its
    jobs' result.json files and prints the table; returns the rows (one per job directory,
    missing ones included)."""
    rows = read_results(sweep_dir)
    if not rows:
        log.warning("no job directory under %s: nothing to gather", sweep_dir)
        return []
    write_csv(rows, sweep_dir / "results.csv")
    write_markdown(rows, sweep_dir / "results.md")
    plot_accuracy(rows, sweep_dir / "accuracy.png")
    print_table(rows, f"sweep results ({sweep_dir})")
    return rows


class GatherResults(Callback):
    """Hydra callback: at the end of a multirun, the results table and plot."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        gather(Path(config.hydra.sweep.dir))


USAGE = """usage: python -m src.sweep <sweep dir>

Gathers a sweep's jobs again (e.g. after an interrupted sweep, or a job finished with resume=):
reads each job's result.json under <sweep dir> (logs/train/multiruns/<sweep>), writes
results.csv, results.md and accuracy.png there, and prints the table."""


if __name__ == "__main__":
    args = sys.argv[1:]
    if args in (["--help"], ["-h"]):
        print(USAGE)
        sys.exit(0)
    if len(args) != 1:
        print(f"error: {' '.join(args) or 'no argument'}: name one sweep folder", file=sys.stderr)
        sys.exit(2)
    if not Path(args[0]).is_dir():
        print(f"error: {args[0]}: no such sweep folder", file=sys.stderr)
        sys.exit(2)
    if not gather(Path(args[0])):
        sys.exit(1)
