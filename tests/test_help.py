"""`python -m src.<command> --help` prints the command's usage with every argument, exit 0."""

from __future__ import annotations

import runpy
import sys

import pytest
from hydra.core.global_hydra import GlobalHydra

import src.speed.startup

# each command's arguments (or, for inspect, the config groups it takes), all in its usage
EXPECTED = {
    "src.eval": ["run=", "ckpt=", "split="],
    "src.predict": ["run=", "images=", "out=", "ckpt="],
    "src.export": ["run=", "format=", "ckpt=", "out="],
    "src.inspect": ["model:", "model/optimizer:", "experiment:", "trainer:", "data:"],
    "src.sweep": ["<sweep dir>"],
    "src.train": ["Configuration groups", "model:", "experiment:"],
}


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_help_prints_every_argument_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, command: str, flag: str
) -> None:
    monkeypatch.setattr(src.speed.startup, "freeze_imported", lambda: None)
    monkeypatch.setattr(sys, "argv", [command, flag])
    monkeypatch.delitem(sys.modules, command, raising=False)  # afresh, as python -m
    GlobalHydra.instance().clear()
    try:
        runpy.run_module(command, run_name="__main__")
        code = 0
    except SystemExit as stopped:
        code = stopped.code or 0
    finally:
        GlobalHydra.instance().clear()
    out, err = capsys.readouterr()
    assert code == 0, err
    if command != "src.train":
        assert out.startswith(f"usage: python -m {command}"), out
    for expected in EXPECTED[command]:
        assert expected in out, (expected, out)


def test_sweep_refuses_a_missing_folder_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path
) -> None:
    monkeypatch.setattr(sys, "argv", ["src.sweep", str(tmp_path / "nope")])
    monkeypatch.delitem(sys.modules, "src.sweep", raising=False)
    with pytest.raises(SystemExit) as stopped:
        runpy.run_module("src.sweep", run_name="__main__")
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope'}: no such sweep folder\n"
