"""The private names of Lightning, torch and Rich that src/speed/ relies on, each checked against
the installed libraries: a new Lightning or Rich that renames or reshapes one fails here, naming
the file that needs it, not as a run that is slower (or breaks) for no visible reason. And no
other file in src/ touches a private name of those libraries."""

from __future__ import annotations

import ast
import inspect
import io
import re
import time
from datetime import timedelta
from pathlib import Path

import lightning as L
import lightning.pytorch.trainer.call
import rich.live
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import CustomProgress
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from rich.console import Console

from src.speed.overhead import HOOK_NAME, saves_by_epoch_only, set_hook_name_plainly
from src.speed.progress import ProgressBar

from .helpers import ROOT

SRC = ROOT / "src"
SPEED = SRC / "speed"
OVERHEAD = "src/speed/overhead.py"
PROGRESS = "src/speed/progress.py"
RELAUNCH = "src/speed/relaunch.py"
# Every private name src/speed/ uses, and the file that uses it; each has a test below.
PRIVATE_NAMES = {
    "_current_fx_name": OVERHEAD,  # LightningModule: the hook Lightning is in
    "_every_n_train_steps": OVERHEAD,  # ModelCheckpoint
    "_train_time_interval": OVERHEAD,  # ModelCheckpoint
    "_stop_progress": PROGRESS,  # RichProgressBar
    "_refresh_thread": PROGRESS,  # rich.live.Live
    "_SubprocessScriptLauncher": RELAUNCH,  # DDP's launcher: runs the command again per rank
}
LIBRARIES = ("lightning", "pytorch_lightning", "lightning_fabric", "torch", "rich", "tensorboard",
             "torchmetrics")  # fmt: skip
# Private names outside src/speed/ that this rule leaves, each with why.
ELSEWHERE = {
    # OmegaConf's, not a library this rule is about (a node's full key, for an error line)
    ("src/config/build.py", "_get_full_key"),
}


def relies(name: str) -> str:
    return f"{PRIVATE_NAMES[name]} relies on {name}"


def is_private(name: str) -> bool:
    """`_name`: not a dunder, nor `_`, nor one of Hydra's config keys (`_target_`)."""
    return name.startswith("_") and not name.startswith("__") and not name.endswith("_")


def private_uses(path: Path) -> list[tuple[int, str]]:
    """(line, name) of each private name a file uses: an attribute (`x._name`, also `self._name`
    where the project does not assign or define `_name` itself), a name imported from a private
    module or with a private name, a method defined under one of PRIVATE_NAMES, and a string
    that is one of PRIVATE_NAMES (`getattr(x, "_name")`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = set()  # what the file's own code assigns on self/cls or defines
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                own.add(node.attr)
    own -= set(PRIVATE_NAMES)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not (on_self and node.attr in own):
                found.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom) and node.module:
            library = node.module.split(".")[0] in LIBRARIES
            parts = [p for p in node.module.split(".") if is_private(p)]
            names = [a.name for a in node.names if is_private(a.name)]
            found += [(node.lineno, n) for n in parts + names if library or n in PRIVATE_NAMES]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found += [(node.lineno, p) for p in alias.name.split(".") if is_private(p)]
        elif isinstance(node, ast.FunctionDef) and node.name in PRIVATE_NAMES:
            found.append((node.lineno, node.name))
        elif isinstance(node, ast.Constant) and node.value in PRIVATE_NAMES:
            found.append((node.lineno, node.value))
    return sorted(set(found))


def test_every_private_name_src_speed_uses_is_listed_and_tested() -> None:
    used = {
        (str(path.relative_to(ROOT)), name)
        for path in sorted(SPEED.glob("*.py"))
        for _, name in private_uses(path)
    }
    listed = {(file, name) for name, file in PRIVATE_NAMES.items()}
    assert used == listed, (
        f"private names used in src/speed/ but not in PRIVATE_NAMES (add a test for each): "
        f"{sorted(used - listed)}; listed but no longer used: {sorted(listed - used)}"
    )


def test_no_file_outside_src_speed_uses_a_private_name() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted(SRC.rglob("*.py"))
        if SPEED not in path.parents
        for line, name in private_uses(path)
        if (str(path.relative_to(ROOT)), name) not in ELSEWHERE
    ]
    assert not found, (
        "private names of a library outside src/speed/ (move the code there, with a test here "
        f"for each name): {found}"
    )


def test_the_private_name_scan_sees_each_kind_of_use(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher\n"
        "from torch.utils._pytree import tree_map\n"
        "class Bar:\n"
        "    def _stop_progress(self):\n"
        "        self._mine = 1\n"
        "        mine = self._mine, self._trainer\n"
        "        return getattr(x, '_refresh_thread'), w._get_file_writer()\n"
    )  # fmt: skip
    assert [name for _, name in private_uses(sample)] == [
        "_SubprocessScriptLauncher", "_pytree", "_stop_progress", "_trainer", "_get_file_writer",
        "_refresh_thread",
    ]  # fmt: skip


# src/speed/overhead.py


def test_lightning_sets_the_modules_current_fx_name_around_each_hook() -> None:
    # set_hook_name_plainly sets this one attribute past nn.Module.__setattr__: it must be the
    # name Lightning assigns, by plain attribute assignment, around the hooks it calls
    assert HOOK_NAME == "_current_fx_name"
    assert hasattr(L.LightningModule(), HOOK_NAME), relies(HOOK_NAME)
    assert L.LightningModule()._current_fx_name is None, relies(HOOK_NAME)
    source = inspect.getsource(lightning.pytorch.trainer.call)
    sets = re.findall(r"pl_module\._current_fx_name = (\w+)", source)
    assert sets.count("hook_name") >= 2, (relies(HOOK_NAME), sets)  # module and callback hooks


def test_a_module_set_to_record_its_hook_plainly_still_reads_it_back() -> None:
    class Module(L.LightningModule):
        pass

    module = Module()
    set_hook_name_plainly(module)
    module._current_fx_name = "on_train_batch_start"
    assert module._current_fx_name == "on_train_batch_start"
    assert module.__dict__[HOOK_NAME] == "on_train_batch_start"
    module.scale = torch.nn.Parameter(torch.ones(1))  # every other name: nn.Module's as before
    assert "scale" in dict(module.named_parameters())
    set_hook_name_plainly(L.LightningModule())  # Lightning's own class is left as it is
    assert L.LightningModule.__setattr__ is torch.nn.Module.__setattr__


def test_model_checkpoint_keeps_its_step_and_time_schedules() -> None:
    # saves_by_epoch_only reads these to tell that a checkpoint's on_train_batch_end returns at
    # once; that hook reads them to decide the same
    by_epoch = ModelCheckpoint()
    by_steps = ModelCheckpoint(every_n_train_steps=5)
    by_time = ModelCheckpoint(train_time_interval=timedelta(minutes=10))
    assert by_epoch._every_n_train_steps == 0, relies("_every_n_train_steps")
    assert by_steps._every_n_train_steps == 5, relies("_every_n_train_steps")
    assert by_epoch._train_time_interval is None, relies("_train_time_interval")
    assert by_time._train_time_interval == timedelta(minutes=10), relies("_train_time_interval")
    source = inspect.getsource(ModelCheckpoint.on_train_batch_end)
    for name in ("_every_n_train_steps", "_train_time_interval"):
        assert f"self.{name}" in source, relies(name)
    assert [saves_by_epoch_only(cb) for cb in (by_epoch, by_steps, by_time)] == [
        True, False, False
    ]  # fmt: skip


# src/speed/progress.py


def test_rich_progress_bar_stops_its_display_in_stop_progress() -> None:
    # ProgressBar overrides it: Lightning must still call it at the end of every stage
    stop = getattr(RichProgressBar, "_stop_progress", None)
    assert callable(stop), relies("_stop_progress")
    assert list(inspect.signature(stop).parameters) == ["self"], relies("_stop_progress")
    assert list(inspect.signature(ProgressBar._stop_progress).parameters) == ["self"]
    for hook in (RichProgressBar.teardown, RichProgressBar.on_exception):
        assert "self._stop_progress()" in inspect.getsource(hook), relies("_stop_progress")


def test_lightnings_progress_joins_the_live_displays_refresh_thread() -> None:
    # What ProgressBar._stop_progress takes away before the stop: the thread it would join
    assert rich.live.Live()._refresh_thread is None, relies("_refresh_thread")
    source = inspect.getsource(CustomProgress.stop)
    assert "self.live._refresh_thread" in source and ".join()" in source, relies("_refresh_thread")


def test_the_progress_bar_stops_without_joining_its_redraw_thread() -> None:
    bar = ProgressBar(refresh_rate=0.1)  # type: ignore[arg-type]  # a redraw every 10 s
    bar.progress = CustomProgress(
        auto_refresh=True, refresh_per_second=0.1, console=Console(file=io.StringIO())
    )
    bar.progress.start()
    thread = bar.progress.live._refresh_thread
    assert thread is not None and thread.is_alive(), relies("_refresh_thread")
    started = time.perf_counter()
    bar._stop_progress()
    assert time.perf_counter() - started < 5, relies("_refresh_thread")  # no wait for the wake
    assert thread.done.is_set() and bar.progress.live._refresh_thread is None


def test_ddp_on_the_cpu_starts_its_ranks_by_running_the_command_again() -> None:
    # check_no_relaunch refuses this launcher in a -m sweep, where each rank would run the sweep
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    launcher = trainer.strategy.launcher
    assert isinstance(launcher, _SubprocessScriptLauncher), relies("_SubprocessScriptLauncher")
    assert launcher.num_processes == 2, relies("_SubprocessScriptLauncher")
