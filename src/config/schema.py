"""Typed config: a dataclass schema for each `_target_` the project builds, made from the type
hints of the target's own signature, so that a type or an option is written once (where it is
used) and OmegaConf enforces it. The data and model groups' schemas are registered in Hydra's
ConfigStore (conf/data/mnist.yaml and conf/model/default.yaml list them first): a wrong type or
an unknown key is refused as the config is composed, with its full key. `typed` applies a
schema to a node at check time too (the trainer, a resumed run's saved config, callbacks)."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)

from src.core.architecture import plan_layers
from src.core.errors import ConfigError, first_line
from src.core.model import Net
from src.data.datamodule import MNISTDataModule
from src.lit.module import MNISTClassifier

# What a value of each type must be, in the words of a refusal.
TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
PLURALS = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}


def field_type(hint: object) -> object:
    """A type hint as OmegaConf takes it: Optional for `X | None`, list for a Sequence, Any for
    what it cannot check (a mapping of options, a union of several types)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [arg for arg in args if arg is not type(None)]
        return typing.Optional[field_type(rest[0])] if len(rest) == 1 else Any  # noqa: UP045
    if origin in (list, Sequence) and args:
        return list[field_type(args[0])]
    return hint if hint in TYPE_WORDS else Any


def schema(*targets: Callable, given: Sequence[str] = (), **hydra_keys: Any) -> type:
    """A dataclass with a field for each named parameter of `targets` (the first is the
    `_target_`; the others take what it passes on as **kwargs) but those the code passes
    (`given`), typed by its hint, defaulting to its default (`???`: required), plus Hydra's keys
    (`_recursive_=False`)."""
    first = targets[0]
    fields: dict[str, tuple[object, Any]] = {
        "_target_": (str, f"{first.__module__}.{first.__qualname__}"),
        **{key: (type(value), value) for key, value in hydra_keys.items()},
    }
    for target in targets:
        try:
            hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
        except (NameError, TypeError):  # a hint that does not evaluate: that class's go unchecked
            hints = {}
        for p in inspect.signature(target).parameters.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in (*fields, *given):
                continue
            default = MISSING if p.default is p.empty else p.default
            fields[p.name] = (field_type(hints.get(p.name)), default)
    return dataclasses.make_dataclass(
        f"{first.__name__}Config",
        [(name, kind, dataclasses.field(default=default)) for name, (kind, default) in
         fields.items()],
    )  # fmt: skip


DataConfig = schema(MNISTDataModule)
ModelConfig = schema(MNISTClassifier, Net, plan_layers, _recursive_=False)
# Applied at check time only: users add Lightning's options the trainer group leaves out with
# +trainer.<option>=..., which Hydra refuses for a key a schema already has.
TrainerConfig = schema(L.Trainer)


# registered as this module is imported: before Hydra composes src.train's config
ConfigStore.instance().store(group="data", name="schema", node=DataConfig)
ConfigStore.instance().store(group="model", name="schema", node=ModelConfig)


def refusal(err: OmegaConfBaseException) -> str | None:
    """One line for OmegaConf's refusal of a value or key: the full key, the value and what is
    allowed; None for another error."""
    key, owner = getattr(err, "full_key", None), getattr(err, "object_type", None)
    if not key:
        return None
    options = [f.name for f in dataclasses.fields(owner)] if dataclasses.is_dataclass(owner) else []
    if isinstance(err, ConfigAttributeError | ConfigKeyError):
        if not options:  # a group of named entries (callbacks): one may be added
            return f"{key}: no such key (to add one: +{key}=...)"
        listed = [name for name in options if not name.startswith("_")]
        close = difflib.get_close_matches(str(err.key), listed, n=1)
        guess = f"; did you mean {close[0]}?" if close else ""
        of = owner.__name__.removesuffix("Config")
        return f"{key}: not an option of {of}{guess} (options: {', '.join(listed)})"
    if not isinstance(err, ValidationError):  # e.g. an interpolation that does not resolve
        return f"{key}: {first_line(err)}"
    if owner is list:  # an item of a list: the list's own type names the item's
        hint = err.ref_type
        while typing.get_origin(hint) is typing.Union:  # Optional[list[X]]
            hint = typing.get_args(hint)[0]
        return f"{key}={err.value!r}: must be {words(typing.get_args(hint)[0])}"
    return f"{key}={err.value!r}: must be {words(typing.get_type_hints(owner).get(str(err.key)))}"


def words(hint: object) -> str:
    """What a value of type `hint` must be, in a refusal's words."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:  # Optional[X]
        return f"{words(args[0])} or null"
    if typing.get_origin(hint) is list:
        return f"a list of {PLURALS.get(args[0], 'values')}"
    return TYPE_WORDS.get(hint, "of its type")


def typed(key: str, node: Mapping[str, Any], config: type) -> dict[str, Any]:
    """`node` (at `key`) merged into the schema `config`: its values, defaults included, as
    plain Python; a wrong type or an unknown option is a ConfigError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(config), OmegaConf.create(dict(node)))
        return OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as err:
        err.full_key = f"{key}.{err.full_key}"
        raise ConfigError(refusal(err) or f"{key}: {err.msg}") from None
