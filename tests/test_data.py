from __future__ import annotations

import fcntl
import gzip
import math
import multiprocessing
import os
import shutil
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from src.core.errors import ConfigError
from src.data.datamodule import (
    BACKGROUND,
    MNISTDataModule,
    TensorBatches,
    affine,
    random_moves,
    shift,
)
from src.data.files import MD5_NOTES, RAW_MD5, file_md5, raw_file_md5, stage_offline_files


def ready(data_dir: Path, **kwargs) -> MNISTDataModule:
    dm = MNISTDataModule(data_dir=str(data_dir), **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("loader", ["fast", "torchvision"])
def test_split_sizes_and_batch_shapes(tiny_data_dir: Path, loader: str) -> None:
    dm = ready(tiny_data_dir, val_size=100, batch_size=32, eval_batch_size=64, loader=loader)
    train, val, test = dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()
    assert [len(train), len(val), len(test)] == [7, 2, 2]  # ceil(200/32), ceil(100/64), ...
    x, y = next(iter(train))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (32,) and y.dtype == torch.int64
    assert sum(len(y) for _, y in train) == 200
    assert sum(len(y) for _, y in val) == 100
    assert sum(len(y) for _, y in test) == 100


def test_affine_turns_and_shifts_whole_pixels_exactly() -> None:
    images = torch.randn(2, 1, 6, 6)
    turned = affine(images, torch.full((2,), math.pi / 2), torch.zeros(2, 2))
    # a quarter turn counter-clockwise on screen: the top row becomes the left column, upwards
    torch.testing.assert_close(turned, torch.rot90(images, 1, dims=(2, 3)), atol=1e-5, rtol=0)
    shifted = affine(images, torch.zeros(2), torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(shifted[0, :, :, 2:], images[0, :, :, :-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(shifted[1, :, 1:], images[1, :, :-1], atol=1e-5, rtol=0)
    # what comes in from outside is the background, the value of a blank pixel
    assert torch.allclose(shifted[0, :, :, :2], torch.tensor(BACKGROUND))
    assert torch.allclose(shifted[1, :, :1], torch.tensor(BACKGROUND))


@pytest.mark.parametrize(("right", "down"), [(1, 0), (-2, 0), (0, 3), (0, -4)])
def test_shift_moves_a_hand_made_image_by_exactly_k_pixels(right: int, down: int) -> None:
    image = torch.full((1, 1, 28, 28), BACKGROUND)
    image[0, 0, 10, 12] = 2.5  # one bright pixel at row 10, column 12
    moved = shift(image, right, down)
    bright = (moved > BACKGROUND + 1e-4).nonzero().tolist()
    assert bright == [[0, 0, 10 + down, 12 + right]]
    assert moved[0, 0, 10 + down, 12 + right].item() == pytest.approx(2.5, abs=1e-5)


def test_random_moves_turn_digits_but_keep_blank_background() -> None:
    generator = torch.Generator().manual_seed(0)
    blank = torch.full((4, 1, 28, 28), BACKGROUND)
    assert torch.allclose(affine(blank, *random_moves([4], 15.0, 0.1, (28, 28), generator)), blank)
    digits = torch.full((4, 1, 28, 28), BACKGROUND)
    digits[:, :, 8:20, 12:16] = 2.8  # a bar, white after normalize()
    angles, shifts = random_moves([4], 15.0, 0.1, (28, 28), generator)
    assert angles.abs().max() <= math.radians(15) and shifts.abs().max() <= 2.8
    moved = affine(digits, angles, shifts)
    assert moved.shape == digits.shape
    changed = (moved - digits).abs().flatten(1).amax(dim=1)
    assert (changed > 0.5).all()  # every image moved, each its own way
    assert len({tuple(m.flatten().tolist()) for m in moved}) == 4
    ink = (digits - BACKGROUND).sum(dim=(1, 2, 3))
    assert torch.allclose((moved - BACKGROUND).sum(dim=(1, 2, 3)), ink, rtol=0.05)


def test_random_moves_of_a_pass_are_those_of_its_batches_drawn_in_turn() -> None:
    together = random_moves([3, 5], 10.0, 0.1, (28, 28), torch.Generator().manual_seed(4))
    generator = torch.Generator().manual_seed(4)
    in_turn = [random_moves([n], 10.0, 0.1, (28, 28), generator) for n in (3, 5)]
    for drawn_together, drawn_in_turn in zip(together, zip(*in_turn, strict=True), strict=True):
        assert torch.equal(drawn_together, torch.cat(drawn_in_turn))


class HostToDeviceCopies(TorchFunctionMode):
    """Counts the calls that make a tensor on a device other than the CPU from host data: on a
    GPU each such copy waits for the work queued there."""

    def __init__(self) -> None:
        super().__init__()
        self.copies = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        inputs = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor)]
        from_host = any(a.device.type == "cpu" for a in inputs) or func is torch.tensor
        if isinstance(out, torch.Tensor) and out.device.type != "cpu" and from_host:
            self.copies += 1
        return out


@pytest.mark.parametrize(
    ("examples", "world_size", "sizes"),
    [(12, 1, [4, 4, 4]), (25, 1, [4] * 6 + [1]), (26, 2, [4, 4, 4, 1])],  # one process, two
)
def test_augmented_batches_copy_from_the_host_once_a_pass(
    examples: int, world_size: int, sizes: list[int]
) -> None:
    # the meta device stands in for a GPU: tensors there have shapes but no values
    images = torch.zeros(examples, 1, 28, 28, device="meta")
    labels = torch.zeros(examples, dtype=torch.long, device="meta")
    augmented = TensorBatches(
        images, labels, 4, shuffle=True, rotation=10.0, translate=0.1, world_size=world_size,
        rank=world_size - 1,
    )  # fmt: skip
    with HostToDeviceCopies() as counter:
        seen = [(x.shape, x.device.type) for x, _ in augmented]
    assert seen == [((n, 1, 28, 28), "meta") for n in sizes]
    assert counter.copies == 3  # the shuffled order, the angles and the shifts, once each


@pytest.mark.parametrize("loader", ["fast", "torchvision"])
def test_augmentation_changes_training_batches_only(tiny_data_dir: Path, loader: str) -> None:
    plain = ready(tiny_data_dir, val_size=100, loader=loader)
    augmented = ready(tiny_data_dir, val_size=100, loader=loader, rotation=10.0, translate=0.1)
    torch.manual_seed(0)
    x_plain, y_plain = next(iter(plain.train_dataloader()))
    torch.manual_seed(0)
    x_aug, y_aug = next(iter(augmented.train_dataloader()))
    assert torch.equal(y_plain, y_aug)  # the same examples, in the same order
    assert not torch.allclose(x_plain, x_aug)
    for split in ("val", "test"):
        loader_plain = getattr(plain, f"{split}_dataloader")()
        loader_aug = getattr(augmented, f"{split}_dataloader")()
        assert torch.equal(next(iter(loader_plain))[0], next(iter(loader_aug))[0])


def test_fast_augmentation_repeats_with_the_seed(tiny_data_dir: Path) -> None:
    batches = []
    for _ in range(2):  # two datamodules built under the same seed, as two runs would
        torch.manual_seed(7)
        dm = ready(tiny_data_dir, val_size=100, rotation=10.0, translate=0.1)
        batches.append([x for x, _ in dm.train_dataloader()])
    first, again = batches
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    # a second loader of the same datamodule goes on with the next pass, as Lightning's
    # reload_dataloaders_every_n_epochs needs
    assert not torch.equal(next(iter(dm.train_dataloader()))[0], again[0])


def test_training_batches_are_clean_after_augment_epochs(tiny_data_dir: Path) -> None:
    plain = ready(tiny_data_dir, val_size=100)
    dm = ready(tiny_data_dir, val_size=100, rotation=10.0, translate=0.1, augment_epochs=2)
    torch.manual_seed(0)
    augmented, unaugmented = dm.train_dataloader(), plain.train_dataloader()
    for epoch in range(3):
        (x, y), (x_plain, y_plain) = next(iter(augmented)), next(iter(unaugmented))
        assert torch.equal(y, y_plain)  # the same examples, in the same order
        assert torch.equal(x, x_plain) == (epoch == 2), epoch  # epochs 0 and 1 augmented


def test_resumed_batches_go_on_with_the_epoch_they_resume() -> None:
    images, labels = torch.randn(10, 1, 4, 4), torch.arange(10)
    fresh = TensorBatches(images, labels, 4, shuffle=True, seed=3, rotation=10.0)
    resumed = TensorBatches(images, labels, 4, shuffle=True, seed=3, rotation=10.0, first_pass=1)
    next(iter(fresh))  # epoch 0
    for (x, y), (x_resumed, y_resumed) in zip(fresh, resumed, strict=True):  # epoch 1
        assert torch.equal(y, y_resumed) and torch.equal(x, x_resumed)


def test_real_mnist_sizes_and_normalization(real_data_dir: Path) -> None:
    dm = ready(real_data_dir)
    train_x, train_y = dm.splits["train"]
    val_x, _ = dm.splits["val"]
    test_x, _ = dm.splits["test"]
    assert train_x.shape == (55_000, 1, 28, 28)
    assert val_x.shape == (5_000, 1, 28, 28)
    assert test_x.shape == (10_000, 1, 28, 28)
    assert abs(train_x.mean().item()) < 0.01
    assert abs(train_x.std().item() - 1.0) < 0.01
    assert sorted(train_y.unique().tolist()) == list(range(10))


def test_fast_path_matches_torchvision_path(real_data_dir: Path) -> None:
    fast = ready(real_data_dir, loader="fast")
    slow = ready(real_data_dir, loader="torchvision")
    for split in ("train", "val", "test"):
        images, labels = fast.splits[split]
        dataset = slow.splits[split]
        assert len(dataset) == len(labels)
        for i in (0, 1, 777, len(labels) - 1):
            x, y = dataset[i]
            torch.testing.assert_close(images[i], x, rtol=0, atol=0)
            assert labels[i].item() == y


def test_split_is_fixed_and_follows_split_seed(tiny_data_dir: Path) -> None:
    a = MNISTDataModule(data_dir=str(tiny_data_dir), val_size=100).split_indices(300)
    b = MNISTDataModule(data_dir=str(tiny_data_dir), val_size=100).split_indices(300)
    c = MNISTDataModule(data_dir=str(tiny_data_dir), val_size=100, split_seed=1).split_indices(300)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert set(a[0].tolist()).isdisjoint(a[1].tolist())
    assert len(a[0]) + len(a[1]) == 300


def test_tensor_batches_shuffle_each_pass_and_shard_by_rank() -> None:
    images, labels = torch.arange(10).float().view(10, 1, 1, 1), torch.arange(10)
    batches = TensorBatches(images, labels, batch_size=4, shuffle=True, seed=3)
    first = torch.cat([y for _, y in batches])
    second = torch.cat([y for _, y in batches])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(10))
    assert not torch.equal(first, second)
    ranks = [
        TensorBatches(images, labels, 3, shuffle=True, seed=3, rank=r, world_size=3)
        for r in range(3)
    ]
    shares = [torch.cat([y for _, y in r]).tolist() for r in ranks]
    assert [len(s) for s in shares] == [3, 3, 3] and [len(r) for r in ranks] == [1, 1, 1]
    assert len(set(sum(shares, []))) == 9


def test_offline_staging_checks_md5_and_lays_out_raw_files(
    tmp_path: Path, offline_dir: Path
) -> None:
    raw = tmp_path / "MNIST" / "raw"
    stage_offline_files(offline_dir, raw)
    assert {p.name for p in raw.iterdir()} == set(RAW_MD5)
    assert all(file_md5(raw / name) == md5 for name, md5 in RAW_MD5.items())
    # the next run hashes the files once and notes their md5s; a file written after that (the
    # same size, other bytes) is hashed again, found corrupt and laid out anew
    stage_offline_files(offline_dir, raw)
    assert {p.name for p in raw.iterdir()} == {*RAW_MD5, MD5_NOTES}
    labels = raw / "t10k-labels-idx1-ubyte"
    whole = labels.read_bytes()
    labels.write_bytes(whole[:-1] + bytes([(whole[-1] + 1) % 10]))
    assert raw_file_md5(labels) != RAW_MD5[labels.name]
    stage_offline_files(offline_dir, raw)
    assert labels.read_bytes() == whole and raw_file_md5(labels) == RAW_MD5[labels.name]


def test_offline_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"empty/train-images-idx3-ubyte\.gz: missing"):
        stage_offline_files(tmp_path / "empty", tmp_path / "raw")


def test_offline_corrupt_files_are_refused(tmp_path: Path, offline_dir: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(offline_dir, bad)
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ConfigError, match=r"t10k-labels-idx1-ubyte\.gz: not a readable gzip"):
        stage_offline_files(bad, tmp_path / "raw")
    with gzip.open(bad / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + bytes(10))
    with pytest.raises(
        ConfigError, match=r"t10k-labels-idx1-ubyte\.gz: decompressed md5 is \w+, expected 27ae"
    ):
        stage_offline_files(bad, tmp_path / "raw")
    assert not (tmp_path / "raw" / "t10k-labels-idx1-ubyte").exists()
    assert not list((tmp_path / "raw").glob("*.part"))


def stage_together(how: str, offline: str, data_dir: str, barrier: Barrier) -> None:
    """One of several processes: wait for the others, then lay MNIST out in the same folder."""
    barrier.wait(timeout=30)
    if how == "stage":
        stage_offline_files(Path(offline), Path(data_dir) / "MNIST" / "raw")
    else:
        MNISTDataModule(data_dir=data_dir, offline_dir=offline).prepare_data()


@pytest.mark.parametrize("how", ["stage", "prepare"])
def test_concurrent_staging_all_succeed(tmp_path: Path, offline_dir: Path, how: str) -> None:
    # fork: the children start at once, without importing torch again
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(3)
    data_dir = tmp_path / "data"
    jobs = [
        context.Process(
            target=stage_together,
            args=(how, str(offline_dir), str(data_dir), barrier),
            daemon=True,  # never left behind to hang the test session
        )
        for _ in range(3)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=60)
    assert [job.exitcode for job in jobs] == [0, 0, 0]
    raw = data_dir / "MNIST" / "raw"
    assert {p.name for p in raw.iterdir()} - {MD5_NOTES} == set(RAW_MD5)  # no *.part file left
    assert all(file_md5(raw / name) == md5 for name, md5 in RAW_MD5.items())


def test_prepare_data_waits_for_the_lock(tiny_data_dir: Path) -> None:
    context = multiprocessing.get_context("fork")
    dm = MNISTDataModule(data_dir=str(tiny_data_dir), val_size=100)
    with open(tiny_data_dir / "MNIST" / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run holds the data folder
        job = context.Process(target=dm.prepare_data, daemon=True)
        job.start()
        job.join(timeout=1.0)
        assert job.is_alive()
        # unlocked explicitly: the forked child holds a copy of this descriptor, so closing
        # ours alone would leave the lock held (by the child, waiting for it)
        fcntl.flock(lock, fcntl.LOCK_UN)
        job.join(timeout=30)
    assert job.exitcode == 0


def test_corrupt_raw_file_is_refused_before_download(tiny_data_dir: Path) -> None:
    raw = tiny_data_dir / "MNIST" / "raw"
    images = raw / "train-images-idx3-ubyte"
    whole = images.read_bytes()
    images.write_bytes(whole[:5000])  # cut short, as by a crash
    dm = MNISTDataModule(data_dir=str(tiny_data_dir), val_size=100)
    with pytest.raises(ConfigError) as caught:
        dm.prepare_data()  # offline_dir=None: would download, were the check not first
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{images}: md5 is {file_md5(images)}, expected 6bbc9ace")
    assert "delete it to download it again, or set data.offline_dir" in message
    # whole and well-formed, but MNIST's own count of labels with other values: damaged
    images.write_bytes(whole)
    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x08\x01" + (60_000).to_bytes(4, "big") + bytes(60_000))
    with pytest.raises(ConfigError, match=r"train-labels-idx1-ubyte: md5 is \w+, expected a25b"):
        dm.prepare_data()


def test_unreadable_raw_file_is_one_clear_error(tiny_data_dir: Path) -> None:
    (tiny_data_dir / "MNIST/raw/train-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03" + bytes(7)
    )
    dm = MNISTDataModule(data_dir=str(tiny_data_dir), val_size=100)
    with pytest.raises(ConfigError, match=r"could not read MNIST from .*MNIST/raw"):
        dm.setup("fit")


def test_val_size_must_leave_training_images(tiny_data_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.val_size=300: must be smaller than the 300"):
        ready(tiny_data_dir, val_size=300)


def test_drop_last_gives_every_step_the_same_shapes() -> None:
    images, labels = torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10)
    kept = TensorBatches(images, labels, batch_size=4, shuffle=True, seed=3)
    dropped = TensorBatches(images, labels, batch_size=4, shuffle=True, seed=3, drop_last=True)
    assert [len(y) for _, y in kept] == [4, 4, 2] and len(kept) == 3
    sizes = [len(y) for _, y in dropped]
    assert sizes == [4, 4] and len(dropped) == 2
    again = TensorBatches(images, labels, batch_size=4, shuffle=True, seed=3)  # a first pass
    fresh = TensorBatches(images, labels, 4, shuffle=True, seed=3, drop_last=True)
    seen = torch.cat([y for _, y in fresh])
    assert seen.tolist() == torch.cat([y for _, y in again]).tolist()[:8]  # the same shuffle


def test_md5_notes_that_cannot_be_written_are_left_out(tmp_path: Path, offline_dir: Path) -> None:
    # as on a read-only mount, where writing and removing the partial notes file both fail
    raw = tmp_path / "raw"
    stage_offline_files(offline_dir, raw)
    (raw / f"{MD5_NOTES}.{os.getpid()}.part").mkdir()
    labels = raw / "t10k-labels-idx1-ubyte"
    assert raw_file_md5(labels) == RAW_MD5[labels.name]
    assert not (raw / MD5_NOTES).exists()
