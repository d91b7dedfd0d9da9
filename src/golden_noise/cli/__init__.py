"""Command-line interface; each command lives in its own module and registers on `app`."""

from golden_noise.cli import generate, import_authors, info, toy, train  # noqa: F401  (registers commands)
from golden_noise.cli import collect  # noqa: F401  (registers commands)
from golden_noise.cli import evaluate, scorers  # noqa: F401  (registers commands)
from golden_noise.cli import demo  # noqa: F401  (registers commands)
from golden_noise.cli.app import app

__all__ = ["app"]
