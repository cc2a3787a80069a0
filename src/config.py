"""Building objects from the Hydra config, with refused values as one-line errors: what every
entry point shares."""

from __future__ import annotations

from typing import Any

import hydra
from hydra.errors import InstantiationException
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from src.errors import ConfigError


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
            first_line = str(cause).strip().splitlines()[0]
            raise ConfigError(f"{cfg._get_full_key(None)}: {first_line}") from None
        raise
