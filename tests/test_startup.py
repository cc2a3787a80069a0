"""Every command takes the objects of its imported modules out of the garbage collector's full
collections before it starts its work (src/speed/startup.py)."""

from __future__ import annotations

import gc
import runpy
import sys
import weakref
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

import src.speed.startup
from src.speed.startup import freeze_imported

BENCHMARK = str(Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py")


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_frozen_objects_leave_full_collections_and_later_garbage_is_still_collected() -> None:
    try:
        existing = len(gc.get_objects())
        freeze_imported()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= existing // 2
        assert len(gc.get_objects()) < existing // 10  # a full collection's walk skips them
        made_later = weakref.ref(Cycle())  # garbage in a reference cycle, made after the freeze
        assert made_later() is not None
        gc.collect()
        assert made_later() is None
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    ("command", "argv", "error"),
    [
        ("src.train", ["no_such_key=1"], "no_such_key"),
        ("src.eval", ["no_such_argument=1"], "no_such_argument"),
        ("src.predict", ["no_such_argument=1"], "no_such_argument"),
        ("src.inspect", ["no_such_key=1"], "no_such_key"),
        ("src.export", ["no_such_argument=1"], "no_such_argument"),
        (BENCHMARK, ["--repeats", "0"], "--repeats"),
    ],
)
def test_each_command_freezes_its_imports_before_its_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, command: str,
    argv: list[str], error: str,
) -> None:  # fmt: skip
    calls = []
    monkeypatch.setattr(src.speed.startup, "freeze_imported", lambda: calls.append(command))
    monkeypatch.setattr(sys, "argv", [command, *argv])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # src.train sets it: put back after
    GlobalHydra.instance().clear()
    try:
        with pytest.raises(SystemExit) as stopped:  # the bad argument, refused by the work itself
            if command == BENCHMARK:
                runpy.run_path(command, run_name="__main__")
            else:
                monkeypatch.delitem(sys.modules, command, raising=False)  # afresh, as python -m
                runpy.run_module(command, run_name="__main__")
    finally:
        GlobalHydra.instance().clear()
    assert stopped.value.code == 2
    assert error in capsys.readouterr().err
    assert calls == [command]
