"""`python -m src.<command> --help` prints the command's usage with every argument, exit 0: for
src.train Hydra's own help, for src.eval, src.predict, src.export and src.inspect Hydra's app help
with the usage text of their config (hydra.help.template in conf/<command>.yaml)."""

from __future__ import annotations

import re
import sys

import pytest

import src.speed.startup
from src.config.build import arguments

from .helpers import in_process, run_as_main

# each command's arguments (or, for inspect, the config groups it takes), all in its usage
EXPECTED = {
    "src.eval": ["run=", "ckpt=", "split=", "(required)", "(default: best)", "(default: test)"],
    "src.predict": ["run=", "images=", "out=", "ckpt=", "(required)", "<run>/predictions/"],
    "src.export": ["run=", "format=", "ckpt=", "out=", "(required)", "<run>/model.onnx"],
    "src.inspect": ["model:", "model/optimizer:", "experiment:", "trainer:", "data:", "[32,64]"],
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
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # run_hydra_main sets it: put back
    monkeypatch.delitem(sys.modules, command, raising=False)  # afresh, as python -m
    code, out, err = in_process(capsys, run_as_main(command))
    assert code == 0, err
    if command != "src.train":  # the usage line first, not Hydra's header
        assert out.startswith(f"usage: python -m {command}"), out
    for expected in EXPECTED[command]:
        assert expected in out, (expected, out)
    if command in ("src.eval", "src.predict", "src.export"):  # every argument, with its meaning
        for key in arguments(command):
            assert re.search(rf"^  {key}=\s+\S", out, re.MULTILINE), (key, out)


def test_sweep_refuses_a_missing_folder_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path
) -> None:
    monkeypatch.setattr(sys, "argv", ["src.sweep", str(tmp_path / "nope")])
    monkeypatch.delitem(sys.modules, "src.sweep", raising=False)
    code, _, err = in_process(capsys, run_as_main("src.sweep"))
    assert code == 2 and err == f"error: {tmp_path / 'nope'}: no such sweep folder\n"
