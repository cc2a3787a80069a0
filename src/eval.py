"""Evaluate a finished run again, as it was trained: `python -m src.eval run=<run dir>
[ckpt=best|last|<path>] [split=test|val]` (conf/eval.yaml; `--help` explains the arguments).

Rebuilds the data and the net from the run's own `.hydra/config.yaml`, loads the checkpoint's
weights only, and prints accuracy, per-digit accuracy and the confusion matrix. Writes
`eval/metrics.json`, `eval/confusion.png` and `eval/mistakes.png` into the run directory
(`eval_val/` for split=val).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.table import Table

from src.config.build import hydra_command, instantiate, run_command
from src.core.drawing import confusion_figure, mistakes_figure, order_mistakes
from src.data.datamodule import denormalize
from src.lit.console import console
from src.lit.module import tally
from src.lit.runs import check_output, load_run
from src.speed.startup import freeze_imported

SPLITS = ("test", "val")
MAX_MISTAKES = 18


@torch.no_grad()
def evaluate(run_dir: str, ckpt: str = "best", split: str = "test") -> dict[str, Any]:
    """Accuracy, per-digit accuracy, confusion matrix and the surest mistakes of a run's
    checkpoint on a split, computed batch by batch as the run's own test was."""
    model, cfg = load_run(run_dir, ckpt)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()
    loader = {"test": datamodule.test_dataloader, "val": datamodule.val_dataloader}[split]()
    confusion = torch.zeros(10, 10, dtype=torch.long)
    parts = []
    for images, labels in loader:
        counts, found = tally(model(images), labels, images)
        confusion += counts
        parts.append(found)
    mistakes = [torch.cat(part) for part in zip(*parts, strict=True)]
    total, right = int(confusion.sum()), int(confusion.trace())
    per_digit = (confusion.diag() / confusion.sum(dim=1).clamp_min(1)).tolist()
    return {
        "run": str(run_dir),
        "checkpoint": str(model.checkpoint_path),
        "split": split,
        "images": total,
        "accuracy": right / total,
        "per_digit_accuracy": {str(d): acc for d, acc in enumerate(per_digit)},
        "confusion": confusion.tolist(),
        "mistakes": total - right,
        "_mistakes": mistakes,
    }


def output_folder(run_dir: str | Path, split: str) -> Path:
    """Where the results of a split go: <run>/eval/ (test) or <run>/eval_val/."""
    return Path(run_dir) / ("eval" if split == "test" else "eval_val")


def write_outputs(result: dict[str, Any], out: Path) -> list[Path]:
    """metrics.json, confusion.png and (when there are mistakes) mistakes.png into `out`; the
    files written."""
    out.mkdir(parents=True, exist_ok=True)
    images, predicted, true, confidence = result.pop("_mistakes")
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    confusion_figure(torch.tensor(result["confusion"])).savefig(out / "confusion.png")
    written = [out / "metrics.json", out / "confusion.png"]
    (out / "mistakes.png").unlink(missing_ok=True)  # an earlier evaluation's
    if len(true):
        surest = order_mistakes(confidence, MAX_MISTAKES)
        figure = mistakes_figure(
            denormalize(images[surest]), predicted[surest], true[surest], confidence[surest],
            len(true),
        )  # fmt: skip
        figure.savefig(out / "mistakes.png")
        written.append(out / "mistakes.png")
    return written


def print_report(result: dict[str, Any]) -> None:
    out = console()
    out.print(
        f"{result['split']} accuracy of {result['checkpoint']}: [bold]{result['accuracy']:.4f}[/] "
        f"({result['images'] - result['mistakes']:,} of {result['images']:,})"
    )
    per_digit = Table(title="per digit")
    for digit in range(10):
        per_digit.add_column(str(digit), justify="right")
    per_digit.add_row(*(f"{acc:.4f}" for acc in result["per_digit_accuracy"].values()))
    out.print(per_digit)
    confusion = Table(title="confusion matrix (rows: true digit, columns: predicted)")
    confusion.add_column("true", justify="right")
    for digit in range(10):
        confusion.add_column(str(digit), justify="right")
    for digit, row in enumerate(result["confusion"]):
        confusion.add_row(str(digit), *(str(count) if count else "." for count in row))
    out.print(confusion)


@hydra_command("src.eval", choices={"split": SPLITS})
def app(cfg: DictConfig) -> None:
    run, split = str(cfg.run), str(cfg.split)
    out = output_folder(run, split)  # checked before any work
    allowed = f"eval writes {out.name}/ into the run folder: copy the run where you can write"
    check_output("run", run, out, folder=True, allowed=allowed)
    result = evaluate(run, str(cfg.ckpt), split)
    written = write_outputs(result, out)
    print_report(result)
    print(f"wrote {', '.join(str(path) for path in written)}")


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m src.eval <argv>` (default: the command line's)."""
    run_command(app, argv)


if __name__ == "__main__":
    freeze_imported()
    main()
