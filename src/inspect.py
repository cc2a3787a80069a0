"""Print the architecture table of the configured Net, with warnings, and draw the tutorial's
lesson for it, without training: `python -m src.inspect [overrides]` takes the same config and
overrides as `src.train`. Writes `receptive_field.png` (what the centre and corner units of each
layer see of a digit) and `pooling.png` (a digit max-pooled again and again) into
`<paths.log_dir>/inspect/`."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from rich.console import Console

from src.config.build import instantiate, one_line_errors
from src.config.checks import check_config
from src.core.architecture import analyze, unit_windows
from src.core.lessons import pooling_figure, receptive_field_figure
from src.data.datamodule import denormalize
from src.lit.console import console, print_architecture, quiet_framework
from src.speed.startup import freeze_imported

PROBE_DIGIT = 7

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def report(cfg: DictConfig, out: Console) -> None:
    """Prints the table and warnings for `cfg.model`, then draws its lesson pictures."""
    net = instantiate(cfg.model, _convert_="all").net
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()  # a fresh clone has no staged files yet
    stats = analyze(net.specs, net.input_size)
    print_architecture(stats, f"model.channels={list(cfg.model.channels)}", out)
    images, labels = datamodule.probe_batch()
    digit = denormalize(images[labels.tolist().index(PROBE_DIGIT)])[0]
    folder = Path(cfg.paths.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    receptive_field_figure(digit, unit_windows(stats)).savefig(folder / "receptive_field.png")
    pooling_figure(digit).savefig(folder / "pooling.png")
    out.print(f"wrote {folder / 'receptive_field.png'} and {folder / 'pooling.png'}")


def usage() -> str:
    """`python -m src.inspect --help`: the call, what it does, and the config groups it takes."""
    groups = sorted(
        (folder.relative_to(CONF_DIR).as_posix(), sorted(f.stem for f in folder.glob("*.yaml")))
        for folder in CONF_DIR.rglob("*")
        if folder.is_dir() and folder.name != "hydra" and any(folder.glob("*.yaml"))
    )
    lines = [
        "usage: python -m src.inspect [overrides]",
        "",
        "Prints the configured net's architecture table (sizes, receptive fields, parameters,",
        "MACs) and its warnings, and draws receptive_field.png and pooling.png into",
        "<paths.log_dir>/inspect/, without training. It takes the config groups and overrides",
        "of python -m src.train (python -m src.train --help shows the whole config):",
        "",
        *(f"  {group}: {', '.join(options)}" for group, options in groups),
        "",
        "example: python -m src.inspect 'model.channels=[32,64]'",
    ]
    return "\n".join(lines)


def main(overrides: list[str]) -> None:
    if "--help" in overrides or "-h" in overrides:
        print(usage())
        return
    quiet_framework()
    with one_line_errors():
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            cfg = compose(config_name="train.yaml", overrides=overrides)
        # no Hydra run here: what a run would write into its own folder goes to inspect/
        cfg.paths.output_dir = str(Path(cfg.paths.log_dir) / "inspect")
        check_config(cfg)
        report(cfg, console())


if __name__ == "__main__":
    freeze_imported()
    main(sys.argv[1:])
