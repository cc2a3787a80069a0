"""Predict your own digit images with a finished run: `python -m src.predict run=<run dir>
images=<file, folder or glob> [out=<folder>] [ckpt=best|last|<path>]` (conf/predict.yaml;
`--help` explains the arguments).

Each image (PNG, JPEG, BMP, ...; any size; grey or colour; dark ink on light paper or light on
dark) is made MNIST-like (`src.core.digits`), then the net predicts it. Prints a table, and writes
into `out` (default `<run>/predictions/<date>_<time>_<microseconds>/`): `predictions.csv`
(image, prediction, probability, p0..p9, error) and per image a figure of what went in and what
came out. An image that cannot be read, or has no ink, is listed as failed; the others go on,
and the exit code is then 1.
"""

from __future__ import annotations

import csv
import glob
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from rich.table import Table

from src.config.build import hydra_command, run_command
from src.core.digits import NotADigit, mnist_like, read_image
from src.core.drawing import prediction_figure
from src.core.errors import ConfigError
from src.lit.console import console
from src.lit.runs import check_output, load_run, normalize_unit
from src.speed.startup import freeze_imported

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}


def find_images(pattern: str) -> list[Path]:
    """A file, a folder's image files, or a glob's matches, sorted."""
    path = Path(pattern)
    if path.is_dir():
        found = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    elif path.is_file():
        found = [path]
    else:
        found = [Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]
    if not found:
        raise ConfigError(f"images={pattern}: no image matched (a file, a folder or a glob)")
    return sorted(found)


def output_folder(run: str, out: str) -> Path:
    """`out`, checked; by default a new <run>/predictions/<date>_<time>_<microseconds>/."""
    if out:
        allowed = "out= names a folder to write into (made if missing)"
        check_output("out", out, Path(out), folder=True, allowed=allowed)
        return Path(out)
    predictions = Path(run) / "predictions"
    allowed = "predictions go into the run folder's predictions/: give out=<folder> elsewhere"
    check_output("run", run, predictions, folder=True, allowed=allowed)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")  # as run folders: never shared
    return predictions / stamp


@hydra_command("src.predict")
def app(cfg: DictConfig) -> None:
    model, _ = load_run(str(cfg.run), str(cfg.ckpt))
    paths = find_images(str(cfg.images))
    out = output_folder(str(cfg.run), str(cfg.out or ""))
    out.mkdir(parents=True, exist_ok=True)
    net = model.net
    layers = net.spatial_layers()
    gap_input = ["gap"] if net.gap_head else []
    rows, figures = [], set()
    for path in paths:
        try:
            image = read_image(path)
            seen = mnist_like(image)
        except NotADigit as err:
            rows.append({"image": str(path), "error": str(err)})
            continue
        log_probs, recorded = net.record(normalize_unit(seen[None]), layers, gap_input)
        probabilities = log_probs.exp()[0]
        cams = net.class_activation_maps(recorded["gap:input"]) if net.gap_head else None
        predicted = int(probabilities.argmax())
        figure = prediction_figure(
            np.asarray(image.convert("RGB")),
            seen,
            probabilities,
            {name: recorded[name][0] for name in layers},
            cams[0, predicted] if cams is not None else None,
            f"{path.name}: {predicted} ({float(probabilities[predicted]):.1%})",
        )
        name = f"{path.name}.png"  # 7.jpg -> 7.jpg.png: never an input's own name
        while name in figures:
            name = f"{Path(name).stem}_{len(figures)}.png"
        figures.add(name)
        figure.savefig(out / name)
        rows.append({"image": str(path), "probabilities": probabilities.tolist()})
    write_csv(rows, out / "predictions.csv")
    print_table(rows)
    print(f"wrote {out}")
    failed = sum("error" in row for row in rows)
    if failed:
        print(f"error: {failed} of {len(rows)} images failed (listed above)", file=sys.stderr)
        sys.exit(1)


def write_csv(rows: list[dict], path: Path) -> None:
    columns = ["image", "prediction", "probability", *(f"p{d}" for d in range(10)), "error"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            if "error" in row:
                writer.writerow([row["image"], "", "", *[""] * 10, row["error"]])
                continue
            p = row["probabilities"]
            best = int(np.argmax(p))
            writer.writerow([row["image"], best, f"{p[best]:.6f}", *(f"{v:.6f}" for v in p), ""])


def print_table(rows: list[dict]) -> None:
    table = Table(title="predictions")
    for name in ("image", "prediction", "probability", "runner-up"):
        table.add_column(name, justify="left" if name == "image" else "right")
    for row in rows:
        if "error" in row:
            table.add_row(row["image"], "[red]failed[/]", "", row["error"])
            continue
        p = np.asarray(row["probabilities"])
        first, second = np.argsort(p)[::-1][:2]
        table.add_row(row["image"], str(first), f"{p[first]:.1%}", f"{second} ({p[second]:.1%})")
    console().print(table)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m src.predict <argv>` (default: the command line's)."""
    run_command(app, argv)


if __name__ == "__main__":
    freeze_imported()
    main()
