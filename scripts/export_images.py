"""Export the images a run logged to TensorBoard (kernels, activations, confusion matrix,
mistakes) as PNG files.

    python scripts/export_images.py logs/train/runs/<run> [--out DIR] [--tag PREFIX] [--all-steps]

Files are named after the tag and step, e.g. kernels_conv1_step000430.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def export_images(
    run_dir: Path, out: Path, prefixes: list[str], all_steps: bool = False
) -> list[Path]:
    """Writes the chosen image events as PNGs into `out`; returns the files written."""
    logdir = run_dir / "tensorboard" if (run_dir / "tensorboard").is_dir() else run_dir
    events = EventAccumulator(str(logdir), size_guidance={"images": 0})
    events.Reload()
    tags = [t for t in events.Tags()["images"] if not prefixes or t.startswith(tuple(prefixes))]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for tag in sorted(tags):
        images = events.Images(tag)
        for image in images if all_steps else images[-1:]:
            path = out / f"{tag.replace('/', '_')}_step{image.step:06d}.png"
            path.write_bytes(image.encoded_image_string)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory (or its tensorboard/ folder)")
    parser.add_argument("--out", type=Path, help="where to write (default: <run_dir>/images)")
    parser.add_argument("--tag", action="append", default=[], help="tag prefix; repeatable")
    parser.add_argument("--all-steps", action="store_true", help="every step, not just the last")
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"error: {args.run_dir}: no such run directory", file=sys.stderr)
        return 2
    written = export_images(
        args.run_dir, args.out or args.run_dir / "images", args.tag, args.all_steps
    )
    if not written:
        print(
            f"error: {args.run_dir}: no images logged (tags {args.tag or 'any'})", file=sys.stderr
        )
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
