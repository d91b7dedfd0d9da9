"""The demo: the whole method on the toy world (collect, train, generate, evaluate), measured."""

from golden_noise.demo.config import FULL, FULL_SCALE, PRESETS, QUICK, DemoConfig
from golden_noise.demo.run import run_demo
from golden_noise.demo.study import run_study

__all__ = ["FULL", "FULL_SCALE", "PRESETS", "QUICK", "DemoConfig", "run_demo", "run_study"]
