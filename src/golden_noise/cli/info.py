"""`golden-noise version`: what is installed, for bug reports."""

import platform

from golden_noise.cli.app import app
from golden_noise.core.version import __version__


@app.command()
def version() -> None:
    """Print the versions of golden-noise and the libraries it runs on."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    print(f"golden-noise {__version__}")
    for dist in ("torch", "diffusers", "transformers", "accelerate", "timm"):
        try:
            print(f"{dist} {dist_version(dist)}")
        except PackageNotFoundError:
            print(f"{dist} (not installed)")
    print(f"python {platform.python_version()}")
