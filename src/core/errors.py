"""The errors a user sees as a single line instead of a traceback: a refused config value, and
the two ways a run ends early that are not bugs (it diverged, or a signal stopped it)."""

from __future__ import annotations

import signal


def first_line(err: BaseException) -> str:
    """An error's first line, for a one-line message (its type's name if it says nothing)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class ConfigError(ValueError):
    """A config value, file or dataset the project cannot use; the message names it and the fix."""


class RunStopped(Exception):
    """A run that ended early; `status` is what result.json and the sweep table call it."""

    status: str  # set by each kind
    exit_code = 1

    def __init__(self, message: str, epochs_finished: int | None) -> None:
        super().__init__(message)
        self.epochs_finished = epochs_finished


class Diverged(RunStopped):
    """The training loss became non-finite, or an epoch's mean loss exploded."""

    status = "diverged"


class Interrupted(RunStopped):
    """SIGTERM or SIGINT arrived during `where` (e.g. "epoch 1 (step 430)", "testing"); the
    exit code is the shell's 128 + the signal's number."""

    status = "interrupted"

    def __init__(self, signal_number: int, where: str, epochs_finished: int) -> None:
        name = signal.Signals(signal_number).name
        super().__init__(
            f"interrupted by {name} during {where}, after {epochs_finished} finished epoch(s)",
            epochs_finished,
        )
        self.exit_code = 128 + signal_number
