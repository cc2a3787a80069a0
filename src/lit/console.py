"""What the console shows: the architecture table with its warnings, and none of the framework's
lines that say nothing about the run."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from src.core.architecture import TABLE_HEADER, LayerStats, check_architecture, table_rows

# The columns of the table printed at fit start; `src.inspect` prints them all.
COMPACT_COLUMNS = ("layer", "kernel", "output size", "receptive field", "params")

# Lightning's info lines that tell nothing about this run: an advertisement, hardware this
# project never uses, advice for matrix products that its nets do not have (convolutions only,
# which cuDNN already runs in TF32), and how Lightning counts steps or ends a loop (the progress
# bar shows it).
FRAMEWORK_CHATTER = (
    "💡 Tip:",
    "TPU available:",
    "HPU available:",
    "You are using a CUDA device",  # "... that has Tensor Cores. ... set_float32_matmul_precision"
    "Loading `train_dataloader` to estimate number of stepping batches",
    "`Trainer.fit` stopped:",
    "[rank: 0] Received SIGTERM:",  # the run's own line says what stopped it, and what next
)


class DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(FRAMEWORK_CHATTER)


def quiet_framework() -> None:
    """Leaves the console to the run: Lightning's chatter (above) and a deprecation warning that
    Lightning 2.6 triggers inside torch 2.14 (torch.utils._pytree.LeafSpec), which no user can
    act on, are dropped. Every other warning and log line stays."""
    warnings.filterwarnings(
        "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
    )
    # Lightning's lines come from child loggers (e.g. lightning.pytorch.utilities.rank_zero), to
    # which a parent's filters do not apply: the handlers that print them get the filter.
    for name in ("lightning.pytorch", "lightning.fabric", ""):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, DropChatter) for f in handler.filters):
                handler.addFilter(DropChatter())


def console(stream=None) -> Console:
    """A rich console; a pipe or file gets tables at full width rather than wrapped at 80."""
    stream = stream or sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 130)


def architecture_table(
    stats: list[LayerStats], title: str, columns: Sequence[str] = TABLE_HEADER
) -> Table:
    """The architecture arithmetic as a rich table: the named columns, the totals in bold."""
    keep = [TABLE_HEADER.index(name) for name in columns]
    table = Table(title=title)
    for i in keep:
        table.add_column(TABLE_HEADER[i], justify="left" if i < 4 else "right")
    rows = [tuple(row[i] for i in keep) for row in table_rows(stats)]
    for row in rows[:-1]:
        table.add_row(*row)
    table.add_section()
    table.add_row(*rows[-1], style="bold")
    return table


def print_architecture(
    stats: list[LayerStats], title: str, out: Console, columns: Sequence[str] = TABLE_HEADER
) -> None:
    """The table, then each warning in bold yellow."""
    out.print(architecture_table(stats, title, columns))
    for warning in check_architecture(stats):
        out.print(f"[bold yellow]warning:[/] {warning}")
