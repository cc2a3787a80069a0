"""MNIST as a LightningDataModule, with a tutorial-style loader and a fast whole-tensor one."""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import math
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from src.core.errors import ConfigError

TRAIN_SIZE, TEST_SIZE = 60_000, 10_000
# md5 of the decompressed IDX files (the original MNIST files').
RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Beside the raw files: each one's md5 with the size, inode and times it had when hashed.
# Hashing the four files at every run would cost time; a file written since is hashed again (a
# corruption that leaves size, inode and times as they were is no longer found).
MD5_NOTES = ".md5.json"


def raw_file_md5(path: Path) -> str:
    """`path`'s md5, from the notes beside it while the file is as it was when hashed."""
    notes_path = path.parent / MD5_NOTES
    try:
        notes = json.loads(notes_path.read_text())
    except (OSError, ValueError):
        notes = {}
    if not isinstance(notes, dict):  # a damaged notes file is written anew
        notes = {}
    stat = path.stat()
    identity = [stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns]
    note = notes.get(path.name)
    if isinstance(note, dict) and note.get("identity") == identity and note.get("md5"):
        return note["md5"]
    digest = file_md5(path)
    notes[path.name] = {"identity": identity, "md5": digest}
    partial = notes_path.with_name(f"{MD5_NOTES}.{os.getpid()}.part")
    try:  # a whole file or none (a folder this process cannot write to keeps no notes)
        partial.write_text(json.dumps(notes))
        os.replace(partial, notes_path)
    except OSError:
        with suppress(OSError):  # on a read-only mount unlink fails too
            partial.unlink()
    return digest


def stage_offline_files(source: Path, raw_dir: Path) -> None:
    """Decompress the four MNIST .gz files from `source` into `raw_dir` (where torchvision
    reads them), checking each decompressed file's md5. Files already there and intact are kept.

    Safe to run from several processes at once: each writes its own temporary file and publishes
    it with an atomic rename, so a reader sees either no file or a whole, checked one.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name, expected in RAW_MD5.items():
        target = raw_dir / name
        if target.is_file() and raw_file_md5(target) == expected:
            continue
        archive = source / f"{name}.gz"
        if not archive.is_file():
            raise ConfigError(
                f"{archive}: missing; data.offline_dir (or MNIST_OFFLINE_DIR) must name a folder "
                f"holding {', '.join(f'{n}.gz' for n in RAW_MD5)}"
            )
        # private to this process (pid + random part), in the same folder so the rename is atomic
        partial = raw_dir / f"{name}.{os.getpid()}.{secrets.token_hex(4)}.part"
        try:
            digest = hashlib.md5()
            try:
                with gzip.open(archive, "rb") as src, open(partial, "xb") as dst:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        digest.update(chunk)
                        dst.write(chunk)
            except (OSError, EOFError, zlib.error) as err:
                raise ConfigError(
                    f"{archive}: not a readable gzip file ({err}); "
                    "replace it with the original MNIST file"
                ) from None
            if digest.hexdigest() != expected:
                raise ConfigError(
                    f"{archive}: decompressed md5 is {digest.hexdigest()}, expected {expected}; "
                    "the file is corrupt or not MNIST: replace it with the original"
                )
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)  # on every failure, Ctrl-C included: no stray file
            raise


def is_other_idx_data(path: Path, name: str) -> bool:
    """Whether `path` is a whole, well-formed IDX file of unsigned bytes with another number of
    items than MNIST's own (a small test set, say): such a file is read as it is, not held to
    MNIST's md5. A file that claims MNIST's count but differs from it is corrupt."""
    ndim = 3 if "images" in name else 1
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim or header[:4] != bytes([0, 0, 0x08, ndim]):
        return False
    dims = struct.unpack(f">{ndim}I", header[4:])
    whole = path.stat().st_size == len(header) + math.prod(dims)
    return whole and dims[0] != (TRAIN_SIZE if name.startswith("train") else TEST_SIZE)


def check_raw_files(raw_dir: Path) -> bool:
    """Whether all four raw files are in `raw_dir`, refusing a corrupt one: torchvision's
    download would then download nothing, and fail reading the file (or read damaged data).
    With one missing it downloads and unpacks all four again, over the others: nothing to check.
    """
    if not all((raw_dir / name).is_file() for name in RAW_MD5):
        return False
    for name, expected in RAW_MD5.items():
        path = raw_dir / name
        actual = raw_file_md5(path)
        if actual != expected and not is_other_idx_data(path, name):
            raise ConfigError(
                f"{path}: md5 is {actual}, expected {expected} (the file is corrupt); delete it "
                "to download it again, or set data.offline_dir=<folder with the four MNIST .gz "
                "files>"
            )
    return True


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder`/.lock (Linux and macOS), so that concurrent runs
    (joblib sweep jobs, say) lay the data out once, one after the other, not on top of each
    other. A folder this process cannot write to is used without a lock: nothing is written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".lock", "a")
    except OSError:
        lock = None
    if lock is None:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        yield
