"""NPNet, the noise prompt network: model, configuration and loading of published weights."""

from golden_noise.npnet.config import NPNetConfig
from golden_noise.npnet.model import NPNet

__all__ = ["NPNet", "NPNetConfig"]
