"""The demo: the whole method on the toy world (collect, train, generate, evaluate), measured."""

from golden_noise.demo.config import FULL, PRESETS, QUICK, DemoConfig
from golden_noise.demo.run import run_demo
from golden_noise.demo.study import run_study

__all__ = ["FULL", "PRESETS", "QUICK", "DemoConfig", "run_demo", "run_study"]
