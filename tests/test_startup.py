"""Every command takes the objects of its imported modules out of the garbage collector's full
collections before it starts its work (src/startup.py)."""

from __future__ import annotations

import gc
import runpy
import sys

import pytest
from hydra.core.global_hydra import GlobalHydra

import src.startup
from src.startup import freeze_imported


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_frozen_objects_leave_full_collections_and_later_garbage_is_still_collected() -> None:
    try:
        existing = len(gc.get_objects())
        freeze_imported()
        assert gc.get_freeze_count() >= existing
        assert len(gc.get_objects()) < existing  # a full collection's walk no longer sees them
        gc.collect()
        Cycle()  # garbage in a reference cycle, made after the freeze
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("src.train", ["no_such_key=1"]),
        ("src.eval", ["no_such_argument=1"]),
        ("src.predict", ["no_such_argument=1"]),
        ("src.inspect", ["no_such_key=1"]),
        ("src.export", ["no_such_argument=1"]),
    ],
)
def test_each_command_freezes_its_imports_before_its_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, module: str, argv: list[str]
) -> None:
    calls = []
    monkeypatch.setattr(src.startup, "freeze_imported", lambda: calls.append(module))
    monkeypatch.setattr(sys, "argv", [module, *argv])
    monkeypatch.delitem(sys.modules, module, raising=False)  # run afresh, as `python -m` does
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as stopped:  # the bad argument, refused by the work itself
        runpy.run_module(module, run_name="__main__")
    assert stopped.value.code == 2
    assert "no_such" in capsys.readouterr().err
    assert calls == [module]
