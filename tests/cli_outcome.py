"""What a user sees from one CLI run, and the shape every refusal must have."""

from __future__ import annotations

import traceback

from typer.testing import CliRunner

from golden_noise.cli.app import app


def run_cli(*args: object) -> tuple[int, str]:
    """Exit code and everything a user would see, including any traceback."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += "".join(traceback.format_exception(result.exception))
    return result.exit_code, output


def assert_refused(code: int, output: str, *named: str) -> None:
    """A refusal: non-zero exit, one `error:` line naming each of `named`, no traceback."""
    assert code != 0, output
    assert "Traceback" not in output, output
    assert output.count("error:") == 1, output
    for text in named:
        assert text in output, (text, output)
