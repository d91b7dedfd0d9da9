"""The `golden-noise` typer application that every command module registers on."""

import typer

app = typer.Typer(
    name="golden-noise",
    help="Golden noise for diffusion models: collect, train, generate, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main() -> None:
    """Golden noise for diffusion models: collect, train, generate, evaluate."""
