"""Building objects from the Hydra config, with refused values as one-line errors: what every
entry point shares. Hydra's own errors (an unknown group, option or key, an override that does
not parse, a run folder that cannot be made) become one line and exit code 2 too."""

from __future__ import annotations

import difflib
import functools
import logging
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import (
    HydraException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.experimental.callback import Callback
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from src.config.schema import refusal
from src.core.errors import ConfigError, first_line
from src.lit.console import quiet_framework

SRC_DIR = Path(__file__).resolve().parents[1]  # the package src/, all of its layers
CONF_DIR = SRC_DIR.parent / "conf"
log = logging.getLogger(__name__)


def is_run_dir(folder: Any) -> bool:
    return bool(folder) and (Path(str(folder)) / ".hydra" / "config.yaml").is_file()


# `resume=<run dir>` runs in that directory and keeps its .hydra/ (conf/hydra/default.yaml); a
# folder that is not a run's gets a fresh directory, which a refusal then removes.
OmegaConf.register_new_resolver(
    "if_resume",
    lambda resume, then, otherwise: then if is_run_dir(resume) else otherwise,
    replace=True,
)


class RunFolderParent(Callback):
    """Notes, before Hydra makes a single run's folder (and any folder above it), the nearest of
    its ancestors that exists already: a refused run removes all that Hydra made for it."""

    existing: Path | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.run.dir)).absolute()
        while not folder.exists():
            folder = folder.parent
        RunFolderParent.existing = folder


def remove_refused_run_dir(output_dir: Path) -> None:
    """Removes the folder Hydra made for a refused run if it holds only what Hydra wrote, and
    the empty folders above it that Hydra made too."""
    if {p.name for p in output_dir.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(output_dir)
    for parent in output_dir.absolute().parents:
        if RunFolderParent.existing in (None, parent) or any(parent.iterdir()):
            break
        parent.rmdir()
    RunFolderParent.existing = None  # this run's: another in the same process notes its own


def instantiate_entries(cfg: DictConfig, group: str) -> list[Any]:
    """The objects of `cfg`'s group of named entries (callbacks, logger). An entry set to null
    is left out, and so, with a warning, is one without a `_target_`: settings that a preset
    gives an entry the chosen group does not have (`experiment=speedrun callbacks=none`)."""
    objects = []
    for name, entry in (cfg.get(group) or {}).items():
        if entry is None:
            continue
        if "_target_" not in entry:  # a mapping: src.config.checks.entries
            log.warning(
                "%s.%s has no _target_ (the %s group chosen has no such entry): its settings "
                "%s are left out", group, name, group, OmegaConf.to_container(entry, resolve=True),
            )  # fmt: skip
            continue
        objects.append(instantiate(entry))
    return objects


def instantiate(cfg: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, turning a refused config value into a one-line ConfigError:
    ours, an unknown argument (TypeError), a value the class refuses (ValueError; Lightning's
    MisconfigurationException, e.g. trainer=gpu with no GPU) or one that needs a package that
    is missing (ImportError). Anything else keeps its traceback."""
    try:
        return hydra.utils.instantiate(cfg, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, (TypeError, ValueError, MisconfigurationException, ImportError)):
            raise ConfigError(f"{cfg._get_full_key(None)}: {first_line(cause)}") from None
        raise


def hydra_error_line(err: Exception) -> str:
    """One line for Hydra's and OmegaConf's errors, which run over 7 to 15 lines, from what
    they carry: the missing option and its group's options, the override that does not parse,
    the key and value OmegaConf refused (an override's refusal is the error's cause)."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, option = err.missing_cfg_file.rpartition("/")
        options = ", ".join(name for name in err.options or () if name != "schema")
        return f"{group}={option}: no such option" + (f" (available: {options})" if options else "")
    if isinstance(err, OverrideParseException):
        *_, reason, see = ["", *err.message.splitlines()]  # Hydra's last lines: why, and its docs
        return f"{err.override}: does not parse as key=value ({reason}; {see.lower()})"
    cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else err
    line = refusal(cause) if isinstance(cause, OmegaConfBaseException) else None
    return line or first_line(cause)


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Refused values, and Hydra's or OmegaConf's errors, as `error: <one line>`, exit code 2."""
    try:
        yield
    except ConfigError as err:
        fail(str(err))
    except (HydraException, OmegaConfBaseException) as err:
        fail(hydra_error_line(err))


def run_hydra_main(main: Callable[[], Any], command: str | None = None) -> None:
    """Calls a @hydra.main function with Hydra's own errors as one line and exit code 2: an
    unknown group, option or key (for a hydra_command's `command`: an argument it does not
    take), an override that does not parse, a run folder it cannot make. Errors raised within
    the job keep their traceback."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises instead of printing its report
    try:
        main()
    except (ConfigError, HydraException, OmegaConfBaseException, OSError) as err:
        if raised_in_job(err):
            raise
        if isinstance(err, ConfigError):
            fail(str(err))
        unknown = err.__cause__ if isinstance(err, HydraException) else err
        if command and isinstance(unknown, ConfigAttributeError | ConfigKeyError):
            fail(not_an_argument(command, str(unknown.full_key)))
        if isinstance(err, (HydraException, OmegaConfBaseException)):
            fail(hydra_error_line(err))
        fail(f"{err.filename or 'the run folder'}: cannot be made ({err.strerror}); set "
             "paths.log_dir (or hydra.run.dir) to a folder you can write")  # fmt: skip


def raised_in_job(err: BaseException) -> bool:
    """Whether the error came through this project's code (the job), not Hydra's alone."""
    frames = traceback.extract_tb(err.__traceback__)[1:]  # the first is the catching frame
    return any(Path(frame.filename).resolve().is_relative_to(SRC_DIR) for frame in frames)


def hydra_command(
    name: str, own_keys: bool = True, choices: Mapping[str, Sequence[str]] | None = None
) -> Callable[[Callable[[DictConfig], Any]], Any]:
    """@hydra.main for the commands beside src.train (`src.eval`, `src.predict`, `src.export`,
    `src.inspect`), with the start-up they share. `name` is the command (`src.eval`); its config
    is conf/<eval>.yaml, whose keys are its `key=value` arguments and whose hydra part writes
    nothing (no run folder, no .hydra/, no log file) and holds the `--help` text. The job then
    starts with a quiet console (quiet_framework); a required argument (`???`) left out, a key
    added with `+key=value` that is not one of the config file's (`own_keys`), a value not
    among its `choices`, and any value the job refuses (a ConfigError, OmegaConf's errors) is
    one line, exit code 2. Start it with run_command."""
    config_name = name.rpartition(".")[2]

    def decorate(job: Callable[[DictConfig], Any]) -> Any:
        @functools.wraps(job)
        def task(cfg: DictConfig) -> Any:
            quiet_framework()
            with one_line_errors():
                check_arguments(name, cfg, own_keys, choices or {})
                return job(cfg)

        app = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
        app = app(task)
        app.command, app.own_keys = name, own_keys
        return app

    return decorate


def check_arguments(
    name: str, cfg: DictConfig, own_keys: bool, choices: Mapping[str, Sequence[str]]
) -> None:
    """Every required argument of the command given (OmegaConf's missing values, `???`), all
    those left out named in one ConfigError; with `own_keys`, no key but its config file's;
    each argument with `choices` one of them."""
    missing = [key for key in cfg if OmegaConf.is_missing(cfg, key)]
    own = arguments(name) if own_keys else []
    unknown = [key for key in cfg if key not in own] if own_keys else []
    wrong = [
        key for key, allowed in choices.items() if key not in missing and cfg[key] not in allowed
    ]
    if missing:
        verb, them = ("is", "it") if len(missing) == 1 else ("are", "them")
        refused = (f"{' and '.join(f'{key}=' for key in missing)} {verb} required "
                   f"(python -m {name} --help explains {them})")  # fmt: skip
    elif unknown:
        refused = not_an_argument(name, unknown[0])
    elif wrong:
        refused = f"{wrong[0]}={cfg[wrong[0]]}: must be one of {', '.join(choices[wrong[0]])}"
    if missing or unknown or wrong:
        raise ConfigError(refused)


def arguments(name: str) -> list[str]:
    """The `key=value` arguments of a hydra_command: its config file's keys."""
    file = OmegaConf.load(CONF_DIR / f"{name.rpartition('.')[2]}.yaml")
    return [key for key in file if key not in ("defaults", "hydra")]


def not_an_argument(name: str, key: str) -> str:
    listed = arguments(name)
    close = difflib.get_close_matches(key, listed, n=1)
    guess = f"; did you mean {close[0]}=?" if close else ""
    return (f"{key}: not an argument of python -m {name}{guess} (arguments: "
            f"{', '.join(f'{k}=' for k in listed)}; --help explains them)")  # fmt: skip


def run_command(app: Callable[[], Any], argv: Sequence[str] | None = None) -> None:
    """Runs a hydra_command app as run_hydra_main does, on `argv` in place of sys.argv[1:] when
    given (a program or a test calling the command's main): sys.argv, HYDRA_FULL_ERROR and
    Hydra's global state are put back after. Hydra's multirun (`-m`) is refused before Hydra
    makes its sweep folder: these commands do one thing a call."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "-m" in args or "--multirun" in args:
        fail(f"-m: not an option of python -m {app.command} (Hydra's multirun is src.train's: "
             "call this command once for each value)")  # fmt: skip
    command = app.command if app.own_keys else None
    if argv is None:
        run_hydra_main(app, command)
        return
    saved_argv, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    saved_hydra = get_gh_backup()
    sys.argv = [saved_argv[0] if saved_argv else "", *argv]
    try:
        run_hydra_main(app, command)
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env
        if saved_hydra is None:
            GlobalHydra.instance().clear()
        else:
            restore_gh_from_backup(saved_hydra)
