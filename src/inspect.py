"""Print the architecture table of the configured Net, with warnings, without training:
`python -m src.inspect [overrides]` takes the same config and overrides as `src.train`."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from src.architecture import TABLE_HEADER, LayerStats, analyze, check_architecture, table_rows
from src.errors import ConfigError
from src.train import instantiate

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def architecture_table(stats: list[LayerStats], title: str) -> Table:
    table = Table(title=title)
    for i, name in enumerate(TABLE_HEADER):
        table.add_column(name, justify="left" if i < 4 else "right")
    rows = table_rows(stats)
    for row in rows[:-1]:
        table.add_row(*row)
    table.add_section()
    table.add_row(*rows[-1], style="bold")
    return table


def report(cfg: DictConfig, console: Console) -> None:
    """Prints the table and warnings for `cfg.model`."""
    net = instantiate(cfg.model, _convert_="all").net
    stats = analyze(net.specs, net.input_size)
    console.print(architecture_table(stats, f"model.channels={list(cfg.model.channels)}"))
    for warning in check_architecture(stats):
        console.print(f"[bold yellow]warning:[/] {warning}")


def main(overrides: list[str]) -> None:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="train.yaml", overrides=overrides)
    try:
        # A pipe gets the table at full width rather than wrapped at 80 columns.
        report(cfg, Console(width=None if sys.stdout.isatty() else 130))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
