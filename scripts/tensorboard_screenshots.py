"""Screenshots of a run's TensorBoard as a person sees it: starts TensorBoard on the run, opens
its tabs in headless Chromium (Debian's `chromium`: apt-get install -y chromium) at the default
card size and saves one PNG per view.

    python scripts/tensorboard_screenshots.py logs/train/runs/<run> [--out DIR] [--views ...]

Views: timeseries, images, scalars, hparams, text; images and scalars take a tag filter (a regular
expression, e.g. images:kernels or scalars:lr|acc) to show only the cards whose tag matches.
Files are named after the view, e.g. images_kernels.png.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

TABS = ("timeseries", "images", "scalars", "hparams", "text")
DEFAULT_VIEWS = [
    "images:kernels",
    "images:activations",
    "images:test",
    "images:top_patches",
    "images:erf|cam|shift",
    "scalars:lr|acc",
    "hparams",
    "text",
    "timeseries",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"TensorBoard did not answer at {url} in {seconds:.0f} s"
                ) from None
            time.sleep(0.5)


def view_url(base: str, view: str) -> str:
    """The dashboard of a view; a tag filter goes into the URL as TensorBoard keeps it."""
    tab, _, tag_filter = view.partition(":")
    url = f"{base}/#{tab}"
    return url + f"&tagFilter={quote(tag_filter)}" if tag_filter else url


def screenshot(browser: str, url: str, path: Path, width: int, height: int) -> None:
    subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--window-size={width},{height}", "--virtual-time-budget=15000",
            f"--screenshot={path}", url,
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory (or any TensorBoard logdir)")
    parser.add_argument("--out", type=Path, help="where to write (default: <run_dir>/screenshots)")
    parser.add_argument("--views", nargs="+", default=DEFAULT_VIEWS, help="views to capture")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1200)
    args = parser.parse_args(argv)
    logdir = (
        args.run_dir / "tensorboard" if (args.run_dir / "tensorboard").is_dir() else args.run_dir
    )
    if not args.run_dir.is_dir():
        print(f"error: {args.run_dir}: no such run directory", file=sys.stderr)
        return 2
    bad = [view for view in args.views if view.partition(":")[0] not in TABS]
    if bad:
        allowed = "timeseries, images[:filter], scalars[:filter], hparams, text"
        print(f"error: view {bad[0]!r}: must be one of {allowed}", file=sys.stderr)
        return 2
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("error: no chromium on PATH: apt-get install -y chromium", file=sys.stderr)
        return 2
    out = args.out or args.run_dir / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    tensorboard = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    server = subprocess.Popen(
        [*tensorboard, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base, 60)
        for view in args.views:
            name = "".join(c if c.isalnum() else "_" for c in view).strip("_")
            path = out / f"{name}.png"
            screenshot(browser, view_url(base, view), path, args.width, args.height)
            print(path)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
