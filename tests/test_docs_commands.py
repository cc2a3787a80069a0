"""The commands README.md and docs/**/*.md show, checked against the code without running them,
so that the documentation cannot drift from it: no training, no data, a few seconds.

Collected: every command line of a fenced code block (```bash and the like: every line;
``` and ```console: the `$ ` lines, and lines that start like a command) and every inline code
span that is a command, that runs `python -m src.<module>` or `make train [ARGS="..."]`.
Backslash-continued lines are joined, `$ ` and trailing `# comments` stripped, `VAR=value`
prefixes kept as the command's environment, and the arguments split as the shell does (shlex).

- `src.train` (and `make train`): composed with Hydra's compose API, Hydra's own part included
  (`hydra/launcher=...`, `hydra.launcher.*`, `hydra.run.dir=`, ...; the launcher class must
  import), then checked as the command checks it before any work: the run folder Hydra would
  make, then `src.config.checks.check_config`. With `-m` (or a preset that sets `hydra.mode:
  MULTIRUN`), the sweep is expanded as Hydra's basic sweeper does (the preset's
  `hydra.sweeper.params`, then the command line) and every job is composed and checked.
- `src.inspect`: composed and checked as `src.inspect.main` does.
- `src.eval`, `src.predict`, `src.export`: each `key=value` must be an argument the command
  accepts (the keys of its config file, conf/<command>.yaml); `--help` is accepted.
- A command the docs show refused (`$ python -m src.train seed=-1` followed by an `error: ...`
  output line) must be refused with that line (machine-dependent figures aside).

What is left out, and why:
- `resume=<run dir>`: goes on with a real stopped run, with that run's own config; such a
  command is composed (the key exists, the run folder interpolation resolves) and must have no
  other override, but is not checked with check_config (there is no run to read).
- A command whose trainer needs a GPU (`trainer=gpu`, `trainer=ddp`, the SLURM sweep): composed
  only, since check_config refuses a GPU trainer where torch finds none; where the docs show
  exactly that refusal and this machine has no GPU, the refusal is checked.
- Placeholders are filled with a value that composes: `<preset>` with a preset, any other
  `<...>` (run folders, SLURM partitions) with a plain word, `/path/to/...` with an existing
  temporary folder, and a `ckpt_path=` file that does not exist with a checkpoint of the
  default net written here (the docs' checkpoints come from default runs). A `[...]` around an
  argument marks it optional in the docs and is dropped; a bare `[overrides]` is left out.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import lightning
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.config.build import arguments, hydra_error_line, instantiate, run_hydra_main
from src.config.checks import check_config
from src.core.errors import ConfigError
from src.core.folders import cannot_make

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").rglob("*.md"))]

# Fenced blocks whose every line is a command; other blocks (``` , ```console, ```text) hold
# commands after a `$ ` prompt, or on a line that starts like one, and their output.
SCRIPT_BLOCKS = {"bash", "sh", "shell", "zsh"}
OUTPUT_BLOCKS = {"", "console", "shell-session", "text"}
# The start of a command line: VAR=value prefixes, then python (any path to it) or make.
COMMAND_START = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\S*/)?(?:python[\d.]*|make)\s")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
INLINE_SPAN = re.compile(r"(?<!`)`([^`]+?)`(?!`)", re.DOTALL)
PLACEHOLDER = re.compile(r"<[^<>\n]+>")
PLACEHOLDER_VALUES = {"<preset>": "tiny"}  # where any word would not compose
PLACEHOLDER_WORD = "placeholder"
PLACEHOLDER_PATH = "/path/to/"
SHELL_OPERATORS = {"&", "&&", "|", "||", ";"}
RUN_COMMANDS = ("src.eval", "src.predict", "src.export")  # key=value of conf/<command>.yaml
# Hydra's command-line flags (src.train): those that take a value, and the others.
HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp"}
HYDRA_FLAGS_WITH_VALUE |= {"--config-name", "-cn", "--config-dir", "-cd"}
HYDRA_FLAGS = {"--help", "-h", "--hydra-help", "--resolve", "--version", "--info", "-i"}
# What differs between machines in a refusal's line: the memory this one has.
MACHINE_FIGURES = [(re.compile(r"this machine has [\d,.]+ GiB"), "this machine has N GiB")]


@dataclass(frozen=True)
class DocCommand:
    source: str  # file:line
    text: str  # as the docs write it, continuation lines joined
    module: str  # "src.train", "src.eval", ... (make train: "src.train")
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    error: str | None = None  # the `error: ...` line the docs show it printing, without "error: "

    @property
    def id(self) -> str:
        text = re.sub(r"\s+#\s.*$", "", self.text)  # without its comment
        text = text if len(text) <= 90 else text[:87] + "..."
        return f"{self.source} {text}"


def fill_placeholders(text: str) -> str:
    return PLACEHOLDER.sub(lambda m: PLACEHOLDER_VALUES.get(m.group(), PLACEHOLDER_WORD), text)


def split_command(text: str) -> list[str]:
    """Shell words of the first command of a line (up to `&&`, `|`, `;`, `&`), comments off."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars="&|;")
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if word in SHELL_OPERATORS:
            break
        words.append(word)
    return words


def parse_command(text: str, source: str, error: str | None = None) -> DocCommand | None:
    """The command a docs line shows, if it runs `python -m src.<module>` or `make train`."""
    try:
        words = split_command(fill_placeholders(text))
    except ValueError:  # unbalanced quotes: not a command line
        return None
    env = []
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        env.append(tuple(words.pop(0).split("=", 1)))
    if len(words) >= 3 and re.fullmatch(r"python[\d.]*", Path(words[0]).name) and words[1] == "-m":
        module, args = words[2], words[3:]
        if not module.startswith("src."):
            return None
    elif len(words) >= 2 and words[0] == "make" and "train" in words[1:]:
        make_vars = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        module, args = "src.train", shlex.split(make_vars.get("ARGS", ""))
    else:
        return None
    kept = []
    for arg in args:
        optional = re.fullmatch(r"\[(\S+=.*)\]", arg)  # [split=val]: an optional argument
        if optional:
            kept.append(optional.group(1))
        elif not re.fullmatch(r"\[[^=]*\]", arg):  # [overrides]: a placeholder for any
            kept.append(arg)
    return DocCommand(source, text, module, tuple(kept), tuple(env), error)


def is_command_line(line: str) -> bool:
    return bool(COMMAND_START.match(line + " "))


def fenced_commands(path: Path, lines: list[str]) -> list[DocCommand]:
    name = path.relative_to(ROOT).as_posix()
    commands: list[DocCommand] = []
    fence: str | None = None
    info = ""
    pending: tuple[str, int] | None = None  # a `$ ` command whose output lines follow
    error: str | None = None

    def flush() -> None:
        nonlocal pending, error
        if pending is not None:
            command = parse_command(pending[0], f"{name}:{pending[1]}", error)
            if command is not None:
                commands.append(command)
        pending, error = None, None

    i = 0
    while i < len(lines):
        line = lines[i]
        opened = FENCE.match(line)
        if fence is None:
            if opened:
                fence, info = opened.group(1), opened.group(2).lower()
            i += 1
            continue
        if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            flush()
            fence = None
            i += 1
            continue
        start = i
        stripped = line.strip()
        prompt = stripped.startswith("$ ")
        if (
            prompt
            or (info in SCRIPT_BLOCKS and stripped and not stripped.startswith("#"))
            or (info in OUTPUT_BLOCKS and is_command_line(stripped))
        ):
            flush()
            text = stripped[2:] if prompt else stripped
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1].rstrip() + " " + lines[i].strip()
            pending = (text, start + 1)
        elif pending is not None and stripped.startswith("error: ") and error is None:
            error = stripped.removeprefix("error: ")
        i += 1
    flush()
    return commands


def inline_commands(path: Path, lines: list[str]) -> list[DocCommand]:
    """Commands in inline code spans outside fenced blocks, paragraph by paragraph (a span may
    run over a line break)."""
    name = path.relative_to(ROOT).as_posix()
    paragraphs: list[tuple[int, list[str]]] = []  # (first line number, lines)
    fence: str | None = None
    for number, line in enumerate(lines, start=1):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
        elif fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
        elif line.strip():
            if paragraphs and paragraphs[-1][0] + len(paragraphs[-1][1]) == number:
                paragraphs[-1][1].append(line)
            else:
                paragraphs.append((number, [line]))
            continue
    commands = []
    for first, paragraph in paragraphs:
        text = "\n".join(paragraph)
        for span in INLINE_SPAN.finditer(text):
            content = " ".join(span.group(1).split())
            if not is_command_line(content):
                continue
            line = first + text.count("\n", 0, span.start())
            command = parse_command(content, f"{name}:{line}")
            if command is not None:
                commands.append(command)
    return commands


def collect(paths: list[Path]) -> list[DocCommand]:
    """Every command of the files, once per file (the first place it is shown)."""
    commands, seen = [], set()
    for path in paths:
        lines = path.read_text().splitlines()
        name = path.relative_to(ROOT).as_posix()
        for command in fenced_commands(path, lines) + inline_commands(path, lines):
            key = (name, command.module, command.args, command.env, command.error)
            if key not in seen:
                seen.add(key)
                commands.append(command)
    return commands


COMMANDS = collect(DOC_FILES)
TRAIN = [c for c in COMMANDS if c.module == "src.train"]
INSPECT = [c for c in COMMANDS if c.module == "src.inspect"]
USED_RUN = [c for c in COMMANDS if c.module in RUN_COMMANDS]


def ids(commands: list[DocCommand]) -> list[str]:
    return [c.id for c in commands]


# --- the collector itself -----------------------------------------------------------------


def test_the_collector_finds_the_readme_commands() -> None:
    # so that a broken collector cannot pass by checking nothing
    readme = [c for c in COMMANDS if c.source.startswith("README.md:")]
    modules = [c.module for c in readme]
    assert modules.count("src.train") >= 5, modules
    for module in RUN_COMMANDS:
        assert module in modules, f"no `python -m {module}` line found in README.md"


def test_the_collector_reads_a_block_as_the_shell_would() -> None:
    lines = [
        "```bash",
        "python -m src.train -m 'model.channels=[8,16],[16,32]' \\",
        "    trainer.max_epochs=3   # a comment",
        'MNIST_OFFLINE_DIR=/path/to/mnist make train ARGS="seed=1 debug=fdr"',
        "python -m src.eval run=logs/train/runs/<run> [split=val] && echo done",
        "```",
        "```",
        "$ python -m src.train seed=-1",
        "error: seed=-1: must be an integer",
        "python -m src.inspect model=tutorial",
        "```",
        "Run `python -m src.train",
        "experiment=<preset>` or `make test`.",
    ]
    path = ROOT / "README.md"
    found = fenced_commands(path, lines) + inline_commands(path, lines)
    assert [(c.module, c.args, c.env, c.error) for c in found] == [
        ("src.train", ("-m", "model.channels=[8,16],[16,32]", "trainer.max_epochs=3"), (), None),
        ("src.train", ("seed=1", "debug=fdr"), (("MNIST_OFFLINE_DIR", "/path/to/mnist"),), None),
        ("src.eval", ("run=logs/train/runs/placeholder", "split=val"), (), None),
        ("src.train", ("seed=-1",), (), "seed=-1: must be an integer"),
        ("src.inspect", ("model=tutorial",), (), None),
        ("src.train", ("experiment=tiny",), (), None),
    ]
    assert [c.source for c in found] == [f"README.md:{n}" for n in (2, 4, 5, 8, 10, 12)]


def test_every_module_shown_exists() -> None:
    missing = []
    for command in COMMANDS:
        module_file = ROOT / (command.module.replace(".", "/") + ".py")
        if not module_file.is_file():
            missing.append(f"{command.source}: no {module_file.relative_to(ROOT)}")
        elif 'if __name__ == "__main__":' not in module_file.read_text():
            missing.append(f"{command.source}: {command.module} does not run with python -m")
    assert not missing, "\n".join(missing)


# --- composing and checking ---------------------------------------------------------------


@pytest.fixture(scope="module")
def default_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the default net (zeros), for a `ckpt_path=` the docs name but that is
    not on this machine: check_config reads its state dict's shapes."""
    with hydra_context():
        model = compose(config_name="train.yaml").model
    state = instantiate(model, _convert_="all").state_dict()
    path = tmp_path_factory.mktemp("docs") / "last.ckpt"
    torch.save({"state_dict": state, "pytorch-lightning_version": lightning.__version__}, path)
    return path


@contextlib.contextmanager
def hydra_context():
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        yield
    GlobalHydra.instance().clear()


class Prepared:
    """A command's arguments and environment with placeholders made real for this machine."""

    def __init__(self, command: DocCommand, tmp: Path, checkpoint: Path) -> None:
        self.replaced: dict[str, str] = {}  # real value -> as the docs write it
        self.args = [self.fill(arg, tmp, checkpoint) for arg in command.args]
        self.env = {key: self.fill(value, tmp, checkpoint) for key, value in command.env}

    def fill(self, value: str, tmp: Path, checkpoint: Path) -> str:
        key, sep, rest = value.partition("=")
        if PLACEHOLDER_PATH in value:  # a folder of yours: it must exist (data.offline_dir)
            real_prefix = f"{tmp}{PLACEHOLDER_PATH}"
            self.replaced[real_prefix] = PLACEHOLDER_PATH
            Path((rest if sep else value).replace(PLACEHOLDER_PATH, real_prefix)).mkdir(
                parents=True, exist_ok=True
            )
            return value.replace(PLACEHOLDER_PATH, real_prefix)
        if sep and key.lstrip("+") == "ckpt_path" and rest and not (ROOT / rest).is_file():
            self.replaced[str(checkpoint)] = rest
            return f"{key}={checkpoint}"
        return value

    def as_documented(self, message: str) -> str:
        for real, documented in self.replaced.items():
            message = message.replace(real, documented)
        return message


def one_line(err: Exception) -> str:
    """The line a refused command prints after `error: ` (src.config.build.one_line_errors)."""
    return str(err) if isinstance(err, ConfigError) else hydra_error_line(err)


def normalized(message: str) -> str:
    for pattern, replacement in MACHINE_FIGURES:
        message = pattern.sub(replacement, message)
    return message


def needs_gpu(cfg: DictConfig) -> bool:
    return cfg.trainer.get("accelerator") in ("gpu", "cuda")


def run_folder_refusal(cfg: DictConfig) -> str | None:
    """The line a single run prints when Hydra cannot make its run folder (before any check):
    src.config.build.run_hydra_main's, from the real mkdir, tried only where it cannot succeed."""
    run_dir = str(OmegaConf.select(cfg, "hydra.run.dir", throw_on_resolution_failure=True))
    if cannot_make(run_dir) is None:
        return None
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit):
        run_hydra_main(lambda: Path(run_dir).mkdir(parents=True, exist_ok=True))
    return stderr.getvalue().strip().removeprefix("error: ")


def split_train_args(command: DocCommand, args: list[str]) -> tuple[bool, list[str]]:
    """(multirun, overrides) of `python -m src.train` arguments; Hydra's other flags refused."""
    multirun, overrides = False, []
    words = iter(args)
    for arg in words:
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in HYDRA_FLAGS_WITH_VALUE:
            next(words, None)
        elif arg in HYDRA_FLAGS:
            continue
        elif arg.startswith("-"):
            pytest.fail(f"{command.source}: {arg}: not a flag of python -m src.train (Hydra's)")
        else:
            overrides.append(arg)
    return multirun, overrides


def sweep_jobs(overrides: list[str], params: dict | None = None) -> list[list[str]]:
    """The jobs' overrides of a sweep, as Hydra's basic sweeper makes them: the config's
    hydra.sweeper.params first, then the command line (a key given twice: the later value); a
    cartesian product."""
    given = [f"{key}={value}" for key, value in (params or {}).items()] + overrides
    by_key: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(given):
        key = override.get_key_element()
        if override.is_sweep_override():
            by_key[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            by_key[key] = [override.input_line]
    return [list(job) for job in itertools.product(*by_key.values())]


def compose_checked(overrides: list[str], checks: bool, tmp: Path) -> DictConfig:
    """The config as the command would compose it; checked with check_config if `checks`."""
    cfg = compose(config_name="train.yaml", overrides=overrides, return_hydra_config=True)
    cfg.paths.output_dir = str(tmp / "run")  # was ${hydra:runtime.output_dir}, set by a run
    if checks:
        check_config(cfg)
    return cfg


def check_train(command: DocCommand, prepared: Prepared, tmp: Path) -> None:
    """Composes and checks `python -m src.train <args>` as it would run: a refused value is
    raised as the command would print it."""
    multirun, overrides = split_train_args(command, prepared.args)
    parsed = OverridesParser.create().parse_overrides(overrides)
    hydra_overrides = [o.input_line for o in parsed if o.is_hydra_override()]
    task = [o.input_line for o in parsed if not o.is_hydra_override()]
    resume = [o for o in task if re.match(r"\+*resume=", o)]
    first_job = sweep_jobs(task)[0]
    cfg = compose_checked(hydra_overrides + first_job, checks=False, tmp=tmp)
    # Hydra's part: the launcher's class imports, the run and sweep folders resolve
    get_class(cfg.hydra.launcher._target_)
    OmegaConf.to_container(cfg.hydra.run, resolve=True)
    OmegaConf.select(cfg, "hydra.sweep.dir", throw_on_resolution_failure=True)
    multirun = multirun or str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    swept = any(o.is_sweep_override() for o in parsed if not o.is_hydra_override())
    assert multirun or not swept, f"{command.source}: sweep values without -m: {overrides}"
    if resume:
        assert not multirun and task == resume, (
            f"{command.source}: resume= takes no other override and no -m (src.train refuses "
            f"{' '.join(o for o in task if o not in resume) or '-m'})"
        )
        return  # composed only: there is no stopped run here to go on with
    # A GPU trainer: composed only (check_config refuses it where torch finds no GPU), except
    # where the docs show that very refusal, which is checked on a machine without a GPU.
    checks = not needs_gpu(cfg)
    if needs_gpu(cfg) and command.error is not None:
        if torch.cuda.is_available():
            pytest.skip("the docs show this refused on a machine without a GPU; this one has one")
        checks = True
    if not multirun:
        refused = run_folder_refusal(cfg)  # Hydra makes the run folder before the job starts
        if refused:
            raise ConfigError(refused)
        if checks:
            check_config(cfg)
        return
    jobs = sweep_jobs(task, cfg.hydra.sweeper.get("params"))
    for job in jobs:  # every job composed in full, as its launcher would
        compose_checked(hydra_overrides + job, checks=checks, tmp=tmp)


def check_inspect(command: DocCommand, prepared: Prepared, tmp: Path) -> None:
    """As src.inspect.main: compose (no Hydra run), output folder set, check_config."""
    cfg = compose(config_name="train.yaml", overrides=prepared.args)
    cfg.paths.output_dir = str(tmp / "inspect")
    check_config(cfg)


# A command shown in several files is checked once: (module, args, env) -> refusal or None.
OUTCOMES: dict[tuple, str | None] = {}


def outcome(command: DocCommand, checker, tmp: Path, checkpoint: Path) -> str | None:
    """The line the command is refused with, as the docs would write it; None if accepted."""
    key = (command.module, command.args, command.env, command.error is None)
    if key not in OUTCOMES:
        OUTCOMES[key] = refusal(command, checker, tmp, checkpoint)
    return OUTCOMES[key]


def refusal(command: DocCommand, checker, tmp: Path, checkpoint: Path) -> str | None:
    prepared = Prepared(command, tmp, checkpoint)
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MNIST_OFFLINE_DIR", raising=False)  # this machine's: not the docs'
        env.delenv("HYDRA_FULL_ERROR", raising=False)  # run_hydra_main sets it
        for key, value in prepared.env.items():
            env.setenv(key, value)
        with hydra_context():
            try:
                checker(command, prepared, tmp)
            except (ConfigError, HydraException, OmegaConfBaseException) as err:
                return prepared.as_documented(one_line(err))
    return None


def expect_outcome(command: DocCommand, checker, tmp: Path, checkpoint: Path) -> None:
    refused = outcome(command, checker, tmp, checkpoint)
    if command.error is None:
        assert refused is None, f"{command.source}: `{command.text}` is refused: {refused}"
    else:
        assert refused is not None, (
            f"{command.source}: `{command.text}` is accepted; the docs show it refused with: "
            f"error: {command.error}"
        )
        assert normalized(refused) == normalized(command.error), (
            f"{command.source}: `{command.text}` is refused with another line than the docs "
            f"show:\n  docs: error: {command.error}\n  code: error: {refused}"
        )


@pytest.mark.parametrize("command", TRAIN, ids=ids(TRAIN))
def test_train_command(command: DocCommand, tmp_path: Path, default_checkpoint: Path) -> None:
    expect_outcome(command, check_train, tmp_path, default_checkpoint)


@pytest.mark.parametrize("command", INSPECT, ids=ids(INSPECT))
def test_inspect_command(command: DocCommand, tmp_path: Path, default_checkpoint: Path) -> None:
    expect_outcome(command, check_inspect, tmp_path, default_checkpoint)


def argument_problems(command: DocCommand) -> list[str]:
    """What `python -m src.eval|predict|export` would refuse among the arguments: each must be
    key=value with a key of the command's config file (its values may change shape: keys only)."""
    accepted = set(arguments(command.module))
    problems = []
    for arg in command.args:
        key, sep, _ = arg.partition("=")
        if arg in ("--help", "-h"):
            continue
        if not sep:
            problems.append(f"{arg}: not key=value")
        elif key not in accepted:
            problems.append(f"{key}=: not an argument of {command.module}")
    return problems


@pytest.mark.parametrize("command", USED_RUN, ids=ids(USED_RUN))
def test_used_run_command_arguments(command: DocCommand) -> None:
    accepted = ", ".join(arguments(command.module))
    assert not argument_problems(command), (
        f"{command.source}: `{command.text}`: {'; '.join(argument_problems(command))} "
        f"(arguments: {accepted})"
    )


# --- the checks themselves: what drifted must fail ------------------------------------------


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        (
            "python -m src.train model.chanels=[8]",
            "model.chanels: not an option of MNISTClassifier",
        ),
        ("python -m src.train experiment=nope", "experiment=nope: no such option"),
        ("python -m src.train hydra/launcher=nope", "hydra/launcher=nope: no such option"),
        ("python -m src.train -m hydra/launcher=joblib hydra.launcher.n_job=2", "n_job"),
        ("python -m src.train -m seed=0,-1", "seed=-1: must be an integer"),  # a later job
        ("python -m src.train -m model=default,tutorial model.channels=[8,16]", "model.head=conv"),
        ("python -m src.train experiment=channels_sweep model.optimizer.lr=0", "lr=0: must be"),
        ("python -m src.train paths.log_dir=/proc/x", "/proc/x: cannot be made"),
        ("python -m src.inspect model.batch_norm=often", "batch_norm='often': must be true"),
    ],
)
def test_a_drifted_command_is_refused(
    line: str, refused: str, tmp_path: Path, default_checkpoint: Path
) -> None:
    command = parse_command(line, "test")
    assert command is not None
    checker = check_inspect if command.module == "src.inspect" else check_train
    message = refusal(command, checker, tmp_path, default_checkpoint)
    assert message is not None and refused in message, message


def test_sweep_values_without_multirun_fail() -> None:
    command = parse_command("python -m src.train seed=0,1", "test")
    assert command is not None
    with pytest.raises(AssertionError, match="sweep values without -m"):
        refusal(command, check_train, Path("unused"), Path("unused"))


def test_an_unknown_argument_of_a_used_run_command_is_named() -> None:
    command = parse_command("python -m src.eval run=x splt=val --help images", "test")
    assert command is not None
    assert argument_problems(command) == [
        "splt=: not an argument of src.eval",
        "images: not key=value",
    ]
