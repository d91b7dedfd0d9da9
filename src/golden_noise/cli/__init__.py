"""Command-line interface; each command lives in its own module and registers on `app`."""

from golden_noise.cli import (  # noqa: F401  (importing a command module registers it)
    collect,
    demo,
    evaluate,
    generate,
    import_authors,
    info,
    merge,
    scorers,
    toy,
    train,
)
from golden_noise.cli.app import app

__all__ = ["app"]
