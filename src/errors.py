"""The one error type a user sees as a single line instead of a traceback."""


class ConfigError(ValueError):
    """A config value, file or dataset the project cannot use; the message names it and the fix."""
