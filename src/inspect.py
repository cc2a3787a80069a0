"""Print the architecture table of the configured Net, with warnings, without training:
`python -m src.inspect [overrides]` takes the same config and overrides as `src.train`."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from rich.console import Console

from src.architecture import analyze
from src.config import instantiate
from src.console import console, print_architecture
from src.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def report(cfg: DictConfig, out: Console) -> None:
    """Prints the table and warnings for `cfg.model`."""
    net = instantiate(cfg.model, _convert_="all").net
    stats = analyze(net.specs, net.input_size)
    print_architecture(stats, f"model.channels={list(cfg.model.channels)}", out)


def main(overrides: list[str]) -> None:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="train.yaml", overrides=overrides)
    try:
        report(cfg, console())
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
