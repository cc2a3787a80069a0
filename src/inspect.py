"""Print the architecture table of the configured Net, with warnings, and draw the tutorial's
lesson for it, without training: `python -m src.inspect [overrides]` takes the same config and
overrides as `src.train` (conf/inspect.yaml: conf/train.yaml, writing no run folder; `--help`
lists the config groups). Writes `receptive_field.png` (what the centre and corner units of each
layer see of a digit) and `pooling.png` (a digit max-pooled again and again) into
`<paths.log_dir>/inspect/`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

from src.config.build import hydra_command, instantiate, run_command
from src.config.checks import check_config
from src.core.architecture import analyze, unit_windows
from src.core.lessons import pooling_figure, receptive_field_figure
from src.data.datamodule import denormalize
from src.lit.console import console, print_architecture
from src.speed.startup import freeze_imported

PROBE_DIGIT = 7


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


@hydra_command("src.inspect", own_keys=False)  # train's config: `+key=value` as train takes it
def app(cfg: DictConfig) -> None:
    # no run here: what a run would write into its own folder goes to <paths.log_dir>/inspect/
    check_config(cfg)
    report(cfg, console())


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m src.inspect <argv>` (default: the command line's)."""
    run_command(app, argv)


if __name__ == "__main__":
    freeze_imported()
    main()
