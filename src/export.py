"""Take a finished run's net elsewhere: `python -m src.export run=<run dir> [format=onnx]
[ckpt=best|last|<path>] [out=<file>]` (conf/export.yaml; `--help` explains the arguments).

Writes `model.onnx` (default: into the run directory) with a dynamic batch size: input
`images` (N, 1, 28, 28), normalized as in training (mean 0.1307, std 0.3081), output
`log_probs` (N, 10). Then runs it with onnxruntime on 100 test images beside torch and prints
the largest absolute difference of the log-probabilities; above 1e-4 the command fails. Needs
the export extra: `pip install -e ".[export]"` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig

from src.config.build import hydra_command, instantiate, run_command
from src.core.errors import ConfigError
from src.lit.runs import check_output, load_run
from src.speed.startup import freeze_imported

FORMATS = ("onnx",)
TOLERANCE = 1e-4
CHECK_IMAGES = 100


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    """The net as ONNX (torch.export-based exporter), the batch dimension dynamic."""
    example = torch.zeros(2, 1, 28, 28)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
        program = torch.onnx.export(
            model.net.eval(),
            (example,),
            input_names=["images"],
            output_names=["log_probs"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
        )
    program.save(str(path))


def check_onnx(model: torch.nn.Module, path: Path, images: torch.Tensor) -> float:
    """The largest absolute difference between onnxruntime's and torch's log-probabilities."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        torch_out = model.net.eval()(images)
    return float((torch.from_numpy(onnx_out) - torch_out).abs().max())


def output_file(run: str, out: str) -> Path:
    """`out`, checked; by default <run>/model.onnx."""
    if out:
        allowed = "out= names the file to write, e.g. out=<folder>/model.onnx"
        check_output("out", out, Path(out), folder=False, allowed=allowed)
        return Path(out)
    allowed = "the model goes into the run folder: give out=<file> elsewhere"
    check_output("run", run, Path(run) / "model.onnx", folder=False, allowed=allowed)
    return Path(run) / "model.onnx"


@hydra_command("src.export", choices={"format": FORMATS})
def app(cfg: DictConfig) -> None:
    run, out_arg = str(cfg.run), str(cfg.out or "")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"format=onnx needs the export extra ({err.name} is missing): "
            'pip install -e ".[export]"'
        ) from None
    model, cfg_run = load_run(run, str(cfg.ckpt))
    out = output_file(run, out_arg)
    datamodule = instantiate(cfg_run.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    batches, count = [], 0
    for images, _ in datamodule.test_dataloader():
        batches.append(images)
        count += len(images)
        if count >= CHECK_IMAGES:
            break
    images = torch.cat(batches)[:CHECK_IMAGES]
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out)
    difference = check_onnx(model, out, images)
    verdict = "ok" if difference <= TOLERANCE else f"FAILED (more than {TOLERANCE:g})"
    print(f"wrote {out} ({out.stat().st_size:,} bytes; input images (N, 1, 28, 28), normalized)")
    print(
        f"onnxruntime against torch on {len(images)} test images: largest absolute difference "
        f"of the log-probabilities {difference:.2e}: {verdict}"
    )
    if difference > TOLERANCE:
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m src.export <argv>` (default: the command line's)."""
    run_command(app, argv)


if __name__ == "__main__":
    freeze_imported()
    main()
