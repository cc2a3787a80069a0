"""What every command does once it has imported its modules, before any work."""

from __future__ import annotations

import gc


def freeze_imported() -> None:
    """Takes the objects that exist now out of the garbage collector's full collections
    (`gc.freeze`): the many modules, classes and functions from importing torch, Lightning and
    Hydra, which live as long as the process. Each full collection walked all of them, in the
    middle of a fit and again as the interpreter exits. What the command builds afterwards is
    collected as before. The young garbage of the imports goes first, or it would stay for
    good."""
    gc.collect(1)
    gc.freeze()
