"""MNIST as a LightningDataModule, with a tutorial-style loader and a fast whole-tensor one."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, Subset
from torchvision import transforms
from torchvision.datasets import MNIST

from src.core.errors import ConfigError
from src.data.files import check_raw_files, folder_lock, stage_offline_files

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
LOADERS = ("fast", "torchvision")
# what a blank (0) pixel becomes after normalize(): the fill for pixels shifted in
BACKGROUND = -MNIST_MEAN / MNIST_STD


def normalize(images: Tensor) -> Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28), the same arithmetic as ToTensor + Normalize
    (in place on the float copy: three fewer copies of the whole set)."""
    return (
        images.unsqueeze(1).to(torch.float32, copy=True).div_(255).sub_(MNIST_MEAN).div_(MNIST_STD)
    )


def denormalize(images: Tensor) -> Tensor:
    """Normalized images back on the 0-1 scale (ink 1, paper 0), for drawing."""
    return (images * MNIST_STD + MNIST_MEAN).clamp(0, 1)


def affine(images: Tensor, angles: Tensor, shifts: Tensor) -> Tensor:
    """Normalized images (N, 1, H, W) each turned by `angles[i]` radians (counter-clockwise on
    screen) about its centre and moved by `shifts[i]` = (right, down) pixels, bilinear, with the
    pixels that come in from outside set to the background."""
    n, _, height, width = images.shape
    cos, sin = angles.cos(), angles.sin()
    # affine_grid maps each output pixel to where it samples the input, in [-1, 1] coordinates
    dx, dy = -2 * shifts[:, 0] / width, -2 * shifts[:, 1] / height
    theta = torch.stack([torch.stack([cos, -sin, dx], 1), torch.stack([sin, cos, dy], 1)], 1)
    grid = F.affine_grid(theta.to(images), [n, 1, height, width], align_corners=False)
    return F.grid_sample(images - BACKGROUND, grid, align_corners=False) + BACKGROUND


def shift(images: Tensor, right: int, down: int) -> Tensor:
    """Normalized images (N, 1, H, W) moved by whole pixels (`right`, `down`; negative: left,
    up), exactly, with background coming in at the edges."""
    n = images.shape[0]
    moves = torch.tensor([[float(right), float(down)]], device=images.device).expand(n, 2)
    return affine(images, torch.zeros(n, device=images.device), moves)


def random_moves(
    batch_sizes: Sequence[int], rotation: float, translate: float, size: tuple[int, int],
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """torchvision's RandomAffine(rotation, translate=(translate, translate)) drawn for several
    batches of images of `size` (height, width) at once, on the CPU: the angles (radians,
    uniform in [-rotation, rotation] degrees) and shifts ((right, down) pixels, uniform up to
    `translate` of the width and height) of all their images, drawn batch by batch, so that the
    draws do not depend on how many batches are drawn together."""
    height, width = size
    angles, shifts = [], []
    for n in batch_sizes:
        angles.append((torch.rand(n, generator=generator) * 2 - 1) * math.radians(rotation))
        shifts.append((torch.rand(n, 2, generator=generator) * 2 - 1) * translate)
    return torch.cat(angles), torch.cat(shifts) * torch.tensor([width, height])


def pass_generator(seed: int, this_pass: int) -> torch.Generator:
    """The random stream of one pass over the training data: its shuffle and augmentation."""
    return torch.Generator().manual_seed((seed + this_pass) % 2**63)


class ShuffledPasses(Sampler[int]):
    """The torchvision loader's shuffle: a new order on each pass, seeded like TensorBatches's
    by the pass number (from `first_pass`), so that a resumed run repeats it."""

    def __init__(self, n: int, seed: int, first_pass: int = 0) -> None:
        self.n, self.seed, self.passes = n, seed, first_pass

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        this_pass, self.passes = self.passes, self.passes + 1
        yield from torch.randperm(self.n, generator=pass_generator(self.seed, this_pass)).tolist()


class TensorBatches:
    """Batches taken by index from whole-split tensors: no per-sample Python work.

    Shuffled afresh on each pass (seeded by the pass number, counted from `first_pass`, so runs
    repeat and a resumed run goes on where it stopped). With several processes each rank takes
    every world_size-th example of the same order, so ranks see equal, disjoint shares. With
    `rotation` (degrees) or `translate` (fraction of the size), each batch is turned and
    shifted at random (`random_moves`, drawn from the same seeded generator for the whole pass)
    by `affine` on the batch's device, in the first `augment_passes` passes (None: all).
    `drop_last` leaves out a last, shorter batch, so that every step has the same shapes (what
    compiled steps and CUDA graphs want).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        rotation: float = 0.0,
        translate: float = 0.0,
        first_pass: int = 0,
        augment_passes: int | None = None,
        drop_last: bool = False,
    ) -> None:
        self.images, self.labels = images, labels
        self.drop_last = drop_last
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.rotation, self.translate = rotation, translate
        self.passes, self.augment_passes = first_pass, augment_passes

    def __len__(self) -> int:
        share = len(self.labels) // self.world_size
        return share // self.batch_size if self.drop_last else math.ceil(share / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.labels)
        this_pass, self.passes = self.passes, self.passes + 1
        generator = pass_generator(self.seed, this_pass)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        share = n // self.world_size
        order = order[: share * self.world_size][self.rank :: self.world_size]
        if self.drop_last:
            order = order[: len(self) * self.batch_size]
        device = self.images.device
        batches = order.to(device).split(self.batch_size)
        augment = (self.rotation > 0 or self.translate > 0) and (
            self.augment_passes is None or this_pass < self.augment_passes
        )
        if not augment:
            yield from ((self.images[batch], self.labels[batch]) for batch in batches)
            return
        # The pass's turns and shifts go to the device in one copy: a copy from the host to a
        # GPU waits for the GPU's queued work, and one per batch would do so every step.
        moves = random_moves(
            [len(batch) for batch in batches], self.rotation, self.translate,
            self.images.shape[-2:], generator,
        )  # fmt: skip
        angles, shifts = (move.to(device).split(self.batch_size) for move in moves)
        for batch, batch_angles, batch_shifts in zip(batches, angles, shifts, strict=True):
            yield affine(self.images[batch], batch_angles, batch_shifts), self.labels[batch]


class MNISTDataModule(L.LightningDataModule):
    """MNIST normalized with mean 0.1307 / std 0.3081; `val_size` of the 60k training images
    (chosen by a seeded permutation) validate, the 10k test images test.

    loader: "fast" holds each split as one tensor on the training device, takes batches by index
    and augments whole batches (`TensorBatches`); "torchvision" is the tutorial's dataset +
    per-sample transforms (RandomAffine when augmenting) + DataLoader. Augmentation (`rotation`
    degrees, `translate` fraction of the size) applies to training batches only, and on the fast
    path to the first `augment_epochs` epochs only (None: all). `drop_last` drops each training
    epoch's last, shorter batch (static shapes). Data comes from `offline_dir`
    (four .gz files) when set, else torchvision's download.
    """

    def __init__(
        self,
        data_dir: str = "data",
        offline_dir: str | None = None,
        val_size: int = 5_000,
        batch_size: int = 128,
        eval_batch_size: int = 1_000,
        loader: str = "fast",
        rotation: float = 0.0,
        translate: float = 0.0,
        num_workers: int = 0,
        split_seed: int = 12345,
        augment_epochs: int | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.offline_dir = Path(offline_dir) if offline_dir else None
        self.fast = loader == "fast"
        self.splits: dict[str, tuple[Tensor, Tensor] | Subset] = {}
        # the run's seed (train() seeds first), the same on every rank: shuffles and augmentation
        self.seed = torch.initial_seed()
        self.train_passes = 0
        self.train_batches: TensorBatches | ShuffledPasses | None = None

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "MNIST" / "raw"

    def prepare_data(self) -> None:
        # one process at a time: one that waited finds the files laid out and intact, keeps them
        with folder_lock(self.raw_dir.parent):
            if self.offline_dir is not None:
                stage_offline_files(self.offline_dir, self.raw_dir)
                return
            if check_raw_files(self.raw_dir):
                return  # all four there and intact: torchvision would read them to find that
            try:
                for train in (True, False):
                    MNIST(self.data_dir, train=train, download=True)
            except RuntimeError as err:
                raise ConfigError(
                    f"could not download MNIST into {self.raw_dir} ({err}); offline, set "
                    "data.offline_dir=<folder with the four MNIST .gz files> or MNIST_OFFLINE_DIR"
                ) from None

    def split_indices(self, n_train: int) -> tuple[Tensor, Tensor]:
        """(train, val) indices into the training images, the same for every run and loader."""
        if self.hparams.val_size >= n_train:
            raise ConfigError(
                f"data.val_size={self.hparams.val_size}: must be smaller than the "
                f"{n_train} training images"
            )
        generator = torch.Generator().manual_seed(self.hparams.split_seed)
        order = torch.randperm(n_train, generator=generator)
        return order[self.hparams.val_size :], order[: self.hparams.val_size]

    def read(self, train: bool, transform: transforms.Compose | None = None) -> MNIST:
        try:
            return MNIST(self.data_dir, train=train, transform=transform)
        except (RuntimeError, ValueError, AssertionError, OSError) as err:
            unread = (f"could not read MNIST from {self.raw_dir} ({err}); delete that folder and "
                      "rerun to lay it out again")  # fmt: skip
            if not self.raw_dir.is_dir():  # read before prepare_data staged anything
                unread = f"no MNIST files in {self.raw_dir}: prepare_data() stages them first"
            raise ConfigError(unread) from None

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if self.fast:
            self.splits = self.tensor_splits()
        else:
            self.splits = self.dataset_splits()

    def tensor_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        train_full, test = self.read(train=True), self.read(train=False)
        # split and moved as bytes, normalized where they will be used (a GPU: in no time; there
        # its division may differ from the CPU's in the last bit)
        images, labels = train_full.data.to(device), train_full.targets.to(device)
        train_idx, val_idx = (i.to(device) for i in self.split_indices(len(labels)))
        return {
            "train": (normalize(images[train_idx]), labels[train_idx]),
            "val": (normalize(images[val_idx]), labels[val_idx]),
            "test": (normalize(test.data.to(device)), test.targets.to(device)),
        }

    def dataset_splits(self) -> dict[str, Subset | MNIST]:
        to_tensor = [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
        augment = []
        if self.hparams.rotation > 0 or self.hparams.translate > 0:
            shift = self.hparams.translate
            augment = [transforms.RandomAffine(self.hparams.rotation, translate=(shift, shift))]
        train_full = self.read(train=True, transform=transforms.Compose(augment + to_tensor))
        val_full = self.read(train=True, transform=transforms.Compose(to_tensor))
        train_idx, val_idx = self.split_indices(len(train_full))
        return {
            "train": Subset(train_full, train_idx.tolist()),
            "val": Subset(val_full, val_idx.tolist()),
            "test": self.read(train=False, transform=transforms.Compose(to_tensor)),
        }

    def probe_batch(self) -> tuple[Tensor, Tensor]:
        """The first validation image of each digit, in digit order, on the CPU: the same
        images on every call, for watching how the net's view of them changes."""
        self.setup()
        val = self.splits["val"]
        labels = val[1].cpu() if self.fast else val.dataset.targets[val.indices]
        firsts = [int((labels == d).nonzero()[0]) for d in range(10) if (labels == d).any()]
        if self.fast:
            return val[0][firsts].cpu(), labels[firsts]
        return torch.stack([val[i][0] for i in firsts]), labels[firsts]

    def val_images(self, count: int) -> Tensor:
        """The first `count` validation images (N, 1, 28, 28), normalized, on the CPU: the same
        ones on every call."""
        self.setup()
        val = self.splits["val"]
        if self.fast:
            return val[0][:count].cpu()
        return torch.stack([val[i][0] for i in range(min(count, len(val)))])

    def loader(self, split: str, batch_size: int, shuffle: bool) -> TensorBatches | DataLoader:
        data, train = self.splits[split], split == "train"
        # Training passes go on from the checkpoint's count when resumed (load_state_dict), and
        # from the last loader's when Lightning builds a new one (reload_dataloaders_every_n_epochs)
        passes = self.train_batches.passes if self.train_batches is not None else self.train_passes
        first_pass = passes if train else 0
        if self.fast:
            rank, world = (
                (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
            )
            if not train:
                return TensorBatches(*data, batch_size, shuffle, self.seed, rank, world)
            hp = self.hparams
            self.train_batches = TensorBatches(
                *data, batch_size, shuffle, self.seed, rank, world, hp.rotation, hp.translate,
                first_pass=first_pass, augment_passes=hp.augment_epochs, drop_last=hp.drop_last,
            )  # fmt: skip
            return self.train_batches
        sampler = ShuffledPasses(len(data), self.seed, first_pass) if shuffle else None
        if train:
            self.train_batches = sampler
        return DataLoader(
            data,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            drop_last=train and self.hparams.drop_last,
        )

    def state_dict(self) -> dict[str, int]:
        """What a checkpoint keeps of the data: how many training passes have started."""
        passes = self.train_batches.passes if self.train_batches is not None else 0
        return {"train_passes": passes}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # Lightning restores this before it builds the training loader (even for
        # configure_optimizers' step count), so the resumed run's first pass is the right one.
        self.train_passes = state["train_passes"]

    def train_dataloader(self) -> TensorBatches | DataLoader:
        return self.loader("train", self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> TensorBatches | DataLoader:
        return self.loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatches | DataLoader:
        return self.loader("test", self.hparams.eval_batch_size, shuffle=False)
