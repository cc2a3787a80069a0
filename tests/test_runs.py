"""A finished run used again: src.eval, src.predict, src.export and the Python API."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import src.eval
import src.export
import src.predict
import src.speed.startup
from src.config.build import instantiate
from src.core.digits import NotADigit, mnist_like
from src.data.datamodule import MNISTDataModule, denormalize
from src.lit.module import MNISTClassifier
from src.lit.runs import load_run, predict, run_config

from .helpers import ROOT, SGD, TINY, compose_train, in_process, run_as_main

SHORT_RUN = [
    "model.channels=[8,8,16,16,32,32]", "trainer.max_epochs=1", "+trainer.limit_train_batches=150",
    "callbacks.kernels=null", "callbacks.activations=null", "callbacks.progress_bar=null",
]  # fmt: skip


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, real_data_dir: Path) -> Path:
    """A short run on real MNIST (about 97% test accuracy), trained through the command line."""
    run = tmp_path_factory.mktemp("runs") / "run"
    result = run_module(
        "src.train", *SHORT_RUN, f"data.data_dir={real_data_dir}", f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def test_digits(real_data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 100 test digits on the 0-1 scale, and their labels."""
    datamodule = MNISTDataModule(data_dir=str(real_data_dir))
    datamodule.setup()
    images, labels = datamodule.splits["test"]
    return denormalize(images[:100])[:, 0], labels[:100]


@pytest.mark.slow
def test_eval_reproduces_the_runs_own_test_accuracy(trained: Path) -> None:
    result = run_module("src.eval", f"run={trained}")
    assert result.returncode == 0, result.stderr[-3000:]
    own = json.loads((trained / "result.json").read_text())["test_acc"]
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(own, abs=1e-6)  # float32 in the run's metrics
    assert metrics["images"] == 10_000 and len(metrics["per_digit_accuracy"]) == 10
    assert sum(map(sum, metrics["confusion"])) == 10_000
    assert (trained / "eval" / "confusion.png").is_file()
    assert (trained / "eval" / "mistakes.png").is_file()
    assert "test accuracy of" in result.stdout and "confusion matrix" in result.stdout
    val = run_module("src.eval", f"run={trained}", "split=val", "ckpt=last")
    assert val.returncode == 0, val.stderr[-3000:]
    val_metrics = json.loads((trained / "eval_val" / "metrics.json").read_text())
    assert val_metrics["images"] == 5_000 and val_metrics["checkpoint"].endswith("last.ckpt")


@pytest.mark.slow  # a sweep and an eval, each in a process of its own
def test_eval_works_on_a_sweep_jobs_directory(tiny_data_dir: Path, tmp_path: Path) -> None:
    sweep = run_module(
        "src.train", "-m", "model.channels=[4,8]", "trainer.max_epochs=1", *TINY,
        f"data.data_dir={tiny_data_dir}", "data.offline_dir=null", "callbacks.kernels=null",
        "callbacks.activations=null", "callbacks.progress_bar=null",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    job = tmp_path / "sweep" / "0"
    result = run_module("src.eval", f"run={job}")
    assert result.returncode == 0, result.stderr[-3000:]
    own = json.loads((job / "result.json").read_text())["test_acc"]
    assert json.loads((job / "eval" / "metrics.json").read_text())["accuracy"] == pytest.approx(
        own, abs=1e-6
    )


def refused(capsys: pytest.CaptureFixture, main, args: list[str], start: str) -> str:
    """Runs an entry point's main in this process; it must stop with exit code 2 and one line."""
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {start}"), lines
    return lines[0]


@pytest.mark.slow
def test_bad_runs_and_checkpoints_stop_with_one_line(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    evaluate, predict_main, export = src.eval.main, src.predict.main, src.export.main
    trained = shutil.copytree(trained, tmp_path / "copy")  # to see that nothing is written
    before = sorted(trained.rglob("*"))
    refused(capsys, evaluate, [f"run={tmp_path}/nope"], f"run={tmp_path}/nope: no such")
    bare = tmp_path / "bare"
    bare.mkdir()
    refused(capsys, evaluate, [f"run={bare}"], f"run={bare}: no .hydra/config.yaml")
    no_ckpt = tmp_path / "no_ckpt"
    shutil.copytree(trained / ".hydra", no_ckpt / ".hydra")
    refused(capsys, evaluate, [f"run={no_ckpt}"], f"run={no_ckpt}: no checkpoints")
    # a checkpoint of another net, and a truncated one
    other = MNISTClassifier(
        optimizer=SGD,
        scheduler={},
        channels=[4],
    )
    wrong = tmp_path / "other.ckpt"
    torch.save({"state_dict": other.state_dict(), "pytorch-lightning_version": "2.6.6"}, wrong)
    line = refused(capsys, evaluate, [f"run={trained}", f"ckpt={wrong}"], f"ckpt={wrong}: ")
    assert "does not fit the run's net (model.channels=[8, 8, 16, 16, 32, 32])" in line
    args = [f"run={trained}", f"ckpt={wrong}", f"images={tmp_path}"]
    refused(capsys, predict_main, args, f"ckpt={wrong}: does not fit")
    cut = tmp_path / "cut.ckpt"
    data = (trained / "checkpoints" / "last.ckpt").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    args = [f"run={trained}", f"ckpt={cut}"]
    refused(capsys, evaluate, args, f"ckpt={cut}: not a readable checkpoint")
    refused(capsys, export, args, f"ckpt={cut}: not a readable checkpoint")
    args = [f"run={trained}", f"images={tmp_path}/*.png"]
    refused(capsys, predict_main, args, f"images={tmp_path}/*.png: no image matched")
    refused(capsys, evaluate, [f"run={trained}", "split=train"], "split=train: must be one of")
    refused(capsys, evaluate, ["run"], "run: does not parse as key=value (missing EQUAL at")
    refused(capsys, evaluate, ["splt=val", f"run={trained}"], "splt: not an argument of python")
    refused(capsys, predict_main, [f"run={trained}"], "images= is required")
    # nothing was written for any of these
    assert sorted(trained.rglob("*")) == before and not (no_ckpt / "eval").exists()


def command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, module: str, *args: str
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `python -m <module> <args>`, run in this process as the
    shell runs it: its `__main__` block on sys.argv (which saves the interpreter's start-up)."""
    monkeypatch.setattr(src.speed.startup, "freeze_imported", lambda: None)
    monkeypatch.setattr(sys, "argv", [module, *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # run_hydra_main sets it: put back
    monkeypatch.delitem(sys.modules, module, raising=False)  # afresh, as python -m
    return in_process(capsys, run_as_main(module))


@pytest.fixture
def small_run(tmp_path: Path, tiny_data_dir: Path) -> Path:
    """A run folder as training leaves one, without training: the config of a small net on the
    tiny data, and a checkpoint of its untrained weights."""
    run = tmp_path / "run"
    cfg = compose_train([f"data.data_dir={tiny_data_dir}", *TINY, "model.channels=[4,8]"], run)
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    (run / "checkpoints").mkdir()
    model = instantiate(cfg.model, _convert_="all", compile=False)
    torch.save({"state_dict": model.state_dict()}, run / "checkpoints" / "last.ckpt")
    return run


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder, the current one: where Hydra would write outputs/, .hydra/ or logs."""
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_eval_and_predict_write_only_their_results(
    small_run: Path, here: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    code, out, err = command(monkeypatch, capsys, "src.eval", f"run={small_run}")
    assert code == 0, err
    assert "test accuracy of" in out and (small_run / "eval" / "metrics.json").is_file()
    image = as_png(a_seven(1.0, 0.0), tmp_path / "seven.png")
    code, out, err = command(
        monkeypatch, capsys, "src.predict", f"run={small_run}", f"images={image}", "out=predicted"
    )
    assert code == 0, err
    assert sorted(p.name for p in (here / "predicted").iterdir()) == [
        "predictions.csv", "seven.png.png"
    ]  # fmt: skip
    assert [p.name for p in here.iterdir()] == ["predicted"]  # no outputs/, .hydra/, logs
    assert sorted(p.name for p in small_run.iterdir()) == [".hydra", "checkpoints", "eval"]


@pytest.mark.parametrize(
    ("module", "args", "line"),
    [
        ("src.predict", ["out={file}"],
         "out={file}: {file} is a file, not a folder; out= names a folder to write into"),
        ("src.predict", ["out=/proc/x"],
         "out=/proc/x: cannot be written (/proc is on the kernel's proc file system); out= names"),
        ("src.predict", ["out={file}/sub"],
         "out={file}/sub: cannot be written ({file} is a file, not a folder); out= names"),
        ("src.export", ["out={folder}"],
         "out={folder}: {folder} is a folder, not a file; out= names the file to write"),
        ("src.export", ["out=/proc/x/model.onnx"],
         "out=/proc/x/model.onnx: cannot be written (/proc is on the kernel's proc file system)"),
        ("src.export", ["out={file}/model.onnx"],
         "out={file}/model.onnx: cannot be written ({file} is a file, not a folder)"),
    ],
)  # fmt: skip
def test_an_out_that_cannot_be_written_is_refused_before_any_work(
    small_run: Path, here: Path, tmp_path: Path, monkeypatch, capsys, module: str,
    args: list[str], line: str,
) -> None:  # fmt: skip
    places = {"file": tmp_path / "notes.txt", "folder": tmp_path / "a_folder"}
    places["file"].write_text("not a folder")
    places["folder"].mkdir()
    image = as_png(a_seven(1.0, 0.0), tmp_path / "seven.png")
    before = sorted(tmp_path.rglob("*"))
    extra = [f"images={image}"] if module == "src.predict" else []
    args = [arg.format(**places) for arg in args]
    code, _, err = command(monkeypatch, capsys, module, f"run={small_run}", *extra, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {line.format(**places)}"), lines[0]
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, here/ included


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("src.eval", "eval writes eval/ into the run folder"),
        ("src.predict", "predictions go into the run folder's predictions/: give out=<folder>"),
        ("src.export", "the model goes into the run folder: give out=<file>"),
    ],
)
def test_a_read_only_run_folder_is_refused_where_the_command_writes_into_it(
    small_run: Path, here: Path, tmp_path: Path, monkeypatch, capsys, module: str, line: str
) -> None:
    image = as_png(a_seven(1.0, 0.0), tmp_path / "seven.png")
    small_run.chmod(0o555)
    if os.access(small_run, os.W_OK):  # root writes anyway: see the folder as a user does
        access = os.access
        monkeypatch.setattr(
            os, "access", lambda path, mode: access(path, mode) and Path(path) != small_run
        )
    before = sorted(tmp_path.rglob("*"))
    extra = [f"images={image}"] if module == "src.predict" else []
    try:
        code, _, err = command(monkeypatch, capsys, module, f"run={small_run}", *extra)
    finally:
        small_run.chmod(0o755)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    expected = f"error: run={small_run}: cannot be written ({small_run} is not writable); {line}"
    assert lines[0].startswith(expected), lines[0]
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    ("module", "args", "line"),
    [
        ("src.predict", [], "run= and images= are required (python -m src.predict --help"),
        ("src.predict", ["run=x"], "images= is required (python -m src.predict --help explains"),
        ("src.eval", ["run=x", "splt=1"], "splt: not an argument of python -m src.eval; did you "
                                          "mean split=? (arguments: run=, ckpt=, split=; --help"),
        ("src.export", ["run=x", "+nope=1"], "nope: not an argument of python -m src.export "
                                             "(arguments: run=, format=, ckpt=, out=; --help"),
        ("src.eval", ["-m", "run=x,y"], "-m: not an option of python -m src.eval"),
    ],
)  # fmt: skip
def test_missing_and_unknown_arguments_are_named_in_one_line(
    here: Path, monkeypatch, capsys, module: str, args: list[str], line: str
) -> None:
    code, _, err = command(monkeypatch, capsys, module, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {line}"), err
    assert not list(here.iterdir())


def as_png(levels: np.ndarray, path: Path) -> Path:
    Image.fromarray(np.clip(levels * 255, 0, 255).astype(np.uint8)).save(path)
    return path


def forms(digit: np.ndarray) -> dict[str, np.ndarray]:
    """One MNIST digit (28x28, ink 1 on 0) as a user might hand it in."""
    paper = 1.0 - digit
    big = (
        np.asarray(
            Image.fromarray((paper * 255).astype(np.uint8)).resize(
                (84, 84), Image.Resampling.BICUBIC
            )
        )
        / 255.0
    )
    margins = np.ones((140, 140))
    margins[28:112, 28:112] = big  # three times larger, with margins
    off_centre = np.ones((90, 120))
    off_centre[5:33, 80:108] = paper  # its own size, near a corner
    colour = np.stack([0.2 + 0.8 * paper, 0.5 + 0.5 * paper, paper], axis=-1)  # green ink
    return {
        "black_on_white": paper,
        "three_times_larger": margins,
        "off_centre": off_centre,
        "colour": colour,
        "light_on_dark": digit,
    }


def test_mnist_like_changes_an_mnist_digit_little(test_digits) -> None:
    digits, _ = test_digits
    for digit in digits[:50]:
        image = Image.fromarray((digit.numpy() * 255).astype(np.uint8))
        assert float((mnist_like(image) - digit).abs().mean()) < 0.05
    for blank in (Image.new("L", (40, 30), 255), Image.new("L", (1, 1), 0)):
        with pytest.raises(NotADigit, match="blank image"):
            mnist_like(blank)


def a_seven(paper: float, ink: float, size: int = 40, margin: int = 6) -> np.ndarray:
    """A hand-made 7 (a bar and a stroke down) on paper of the given level."""
    levels = np.full((size, size), paper, dtype=np.float32)
    levels[margin : margin + 5, margin : size - margin] = ink
    for row in range(margin, size - margin):
        column = size - margin - 3 - (row - margin) // 3
        levels[row, column - 2 : column + 3] = ink
    return levels


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.fromarray((a_seven(1.0, 0.0) * 255).astype(np.uint8)),  # black on white
        lambda: Image.fromarray((a_seven(0.42, 0.05) * 255).astype(np.uint8)),  # a dim photo
        lambda: Image.fromarray((a_seven(0.55, 0.95) * 255).astype(np.uint8)),  # chalk on grey
        lambda: Image.fromarray((a_seven(1.0, 0.0, 28, margin=0) * 255).astype(np.uint8)),
        lambda: Image.fromarray((a_seven(0.0, 1.0) * 65535).astype(np.uint16)),  # 16-bit
        lambda: Image.fromarray((a_seven(1.0, 0.0) * 255).astype(np.uint8)).convert("P"),
        lambda: Image.merge(  # black ink on a transparent background
            "LA",
            [
                Image.new("L", (40, 40), 0),
                Image.fromarray(((1 - a_seven(1.0, 0.0)) * 255).astype(np.uint8)),
            ],
        ),  # fmt: skip
        lambda: Image.merge(  # white ink on a transparent background
            "LA",
            [
                Image.new("L", (40, 40), 255),
                Image.fromarray(((1 - a_seven(1.0, 0.0)) * 255).astype(np.uint8)),
            ],
        ),  # fmt: skip
    ],
    ids=[
        "black_on_white",
        "dark_paper",
        "chalk",
        "cropped",
        "16_bit",
        "palette",
        "alpha_black",
        "alpha_white",
    ],  # fmt: skip
)
def test_mnist_like_finds_the_ink_in_every_kind_of_image(make) -> None:
    image = make()
    seen = mnist_like(image)
    reference = a_seven(1.0, 0.0)
    if image.size == (28, 28):  # the 7 cropped to its ink: the same 7 with margins added
        reference = np.pad(a_seven(1.0, 0.0, 28, margin=0), 6, constant_values=1.0)
    expected = mnist_like(Image.fromarray((reference * 255).astype(np.uint8)))
    assert seen.shape == (28, 28) and float(seen.max()) == pytest.approx(1.0, abs=0.05)
    assert float((seen - expected).abs().mean()) < 0.05  # the same 7 each time


@pytest.mark.slow
def test_predict_agrees_with_the_net_on_digits_in_several_forms(
    trained: Path, test_digits, tmp_path: Path
) -> None:
    digits = test_digits[0][:12]  # 60 images in 5 forms, a figure each
    model, _ = load_run(trained)
    expected = predict(model, digits).argmax(dim=1)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, digit in enumerate(digits.numpy()):
        for name, levels in forms(digit).items():
            suffix = ".jpg" if name == "colour" else ".png"
            path = folder / f"{i:03d}_{name}{suffix}"
            Image.fromarray(np.clip(levels * 255, 0, 255).astype(np.uint8)).save(path)
    as_png(np.ones((30, 30)), folder / "zz_blank.png")
    (folder / "zz_notes.png").write_text("not an image")
    out = tmp_path / "out"
    result = run_module("src.predict", f"run={trained}", f"images={folder}", f"out={out}")
    assert result.returncode == 1, result.stderr[-3000:]  # the two images it could not read
    assert result.stderr.strip().endswith("error: 2 of 62 images failed (listed above)")
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "prediction", "probability",
                             *(f"p{d}" for d in range(10)), "error"]  # fmt: skip
    by_name = {Path(r["image"]).name: r for r in rows}
    assert by_name["zz_blank.png"]["error"] == "blank image (no ink)"
    assert by_name["zz_notes.png"]["error"].startswith("not an image")
    agree = total = 0
    for name, row in by_name.items():
        if name.startswith("zz_"):
            continue
        total += 1
        agree += int(row["prediction"]) == int(expected[int(name[:3])])
        assert sum(float(row[f"p{d}"]) for d in range(10)) == pytest.approx(1, abs=1e-4)
    assert total == 60 and agree / total >= 0.95, agree / total
    assert (out / "000_colour.jpg.png").is_file()  # one figure per image that was predicted
    assert not (out / "zz_blank.png.png").exists()
    assert "failed" in result.stdout and f"wrote {out}" in result.stdout


@pytest.mark.slow
def test_export_onnx_matches_torch(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    result = run_module("src.export", f"run={trained}", f"out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.is_file() and "largest absolute difference" in result.stdout
    difference = float(result.stdout.split("log-probabilities ")[1].split(":")[0])
    assert difference <= 1e-4
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 7):  # the batch size is dynamic
        (log_probs,) = session.run(None, {"images": np.zeros((batch, 1, 28, 28), np.float32)})
        assert log_probs.shape == (batch, 10)
    bad = run_module("src.export", f"run={trained}", "format=tflite")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: format=tflite: must be one of onnx"


@pytest.mark.slow
def test_python_api_and_load_from_checkpoint(trained: Path, test_digits) -> None:
    digits, labels = test_digits
    model, cfg = load_run(trained, "last")
    probabilities = predict(model, digits)
    assert probabilities.shape == (100, 10)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(100), atol=1e-5)
    assert (probabilities.argmax(dim=1) == labels).float().mean() > 0.9
    assert list(cfg.model.channels) == [8, 8, 16, 16, 32, 32]
    lightning = MNISTClassifier.load_from_checkpoint(
        trained / "checkpoints" / "last.ckpt", map_location="cpu"
    )
    assert torch.equal(predict(lightning, digits).argmax(dim=1), probabilities.argmax(dim=1))


def test_a_run_saved_before_the_layers_moved_names_todays_classes(tmp_path: Path) -> None:
    # runs made when src/ was flat name src.module.MNISTClassifier, src.callbacks.KernelImages...
    cfg = compose_train([], tmp_path / "run")
    old = {"src.lit.module.": "src.module.", "src.data.datamodule.": "src.data.",
           "src.lit.views.": "src.callbacks.", "src.lit.callbacks.": "src.callbacks.",
           "src.speed.overhead.": "src.overhead."}  # fmt: skip
    text = OmegaConf.to_yaml(cfg)
    for new, before in old.items():
        text = text.replace(new, before)
    assert "src.module.MNISTClassifier" in text and "src.callbacks.KernelImages" in text
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text(text)
    loaded = run_config(tmp_path / "run")
    assert OmegaConf.to_yaml(loaded).replace(str(tmp_path / "run"), "") == OmegaConf.to_yaml(
        cfg
    ).replace(str(tmp_path / "run"), "")
