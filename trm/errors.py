"""The failures a `trm` command reports in one line instead of a traceback (exit codes: see trm/cli.py)."""


class BadInput(ValueError):
    """The user's input cannot be used (a flag value, a file's content, a model folder): the command exits 2."""


class RunFailed(RuntimeError):
    """The run itself failed although its input was fine (a quality limit crossed, a server gone): exit 1."""
