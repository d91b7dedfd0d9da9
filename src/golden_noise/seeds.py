"""The project's seed convention: every (prompt, seed) image starts from a CPU generator."""

import torch


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator draws the same noise on any device, so the standard, golden and teacher
    images of one seed share their initial noise everywhere."""
    return torch.Generator(device="cpu").manual_seed(seed)
