"""The `golden-noise` typer application that every command module registers on.

Errors a user can cause reach them as one line, `error: ...`, and an exit code, never as a
traceback: GoldenNoiseError, and the OS's own refusals (a read-only or full disk, an output
path that is a file). The message is printed as plain text, not rich markup, because it
quotes user text: a prompt or path holding `[/x]` must not crash the printer, and `toy:train:`
must not become an emoji.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from golden_noise.core.errors import GoldenNoiseError


def user_errors() -> tuple[type[BaseException], ...]:
    """What a user's input or machine can cause; everything else is our bug (a traceback)."""
    from safetensors import SafetensorError  # its disk-full error is not an OSError

    return (GoldenNoiseError, OSError, SafetensorError)


def describe(error: BaseException) -> str:
    """One line for `error`: OS errors as "reason: path", others as their message."""
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error).strip() or type(error).__name__


def print_error(error: BaseException) -> None:
    """`error: <message>` on stderr, the message never read as markup or emoji codes."""
    from rich.console import Console
    from rich.text import Text

    message = Text.assemble(("error: ", "bold red"), describe(error))
    Console(stderr=True).print(message, soft_wrap=True)  # paths stay whole for copy and paste


def fail(error: BaseException, code: int = 1) -> NoReturn:
    """Print `error` and leave with `code` (for commands that catch errors themselves)."""
    print_error(error)
    raise typer.Exit(code) from None


class _Commands(TyperGroup):
    """Runs a command and turns any user error that escaped it into `error: ...`, exit 1;
    third-party log lines stay out of the console unless `--verbose` (quieted as the command
    starts, after its `--help` is answered: the libraries load slowly)."""

    def get_command(self, ctx: Any, name: str) -> Any:
        command = super().get_command(ctx, name)
        if command is not None and command.callback is not None:
            run = command.callback

            def quieted(*args: Any, **kwargs: Any) -> Any:
                if not ctx.params.get("verbose"):
                    from golden_noise.core.progress import quiet_libraries

                    quiet_libraries()
                return run(*args, **kwargs)

            command.callback = quieted
        return command

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except user_errors() as error:
            fail(error)


app = typer.Typer(
    name="golden-noise",
    cls=_Commands,
    help="Golden noise for diffusion models: collect, train, generate, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    verbose: bool = typer.Option(
        False, "--verbose", help="Show third-party log lines and loading bars too."
    ),
) -> None:
    """Golden noise for diffusion models: collect, train, generate, evaluate."""
