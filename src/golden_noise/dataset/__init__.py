"""The Noise Prompt Dataset on disk: manifest, atomic sharded writer, lazy reader, importer.

Layout of a dataset directory:
    manifest.json          what made the rows (model, shapes, sampler, teacher, scorer)
    prompts.jsonl          each prompt once: index, text, optional type/group
    rows/r{rank}-{seq}.safetensors        source/target latents, prompt_index, seed, scores
    embeddings/r{rank}-{seq}.safetensors  prompt_index, per-token text embeddings [L, D]
"""

from golden_noise.dataset.manifest import DatasetManifest
from golden_noise.dataset.prompts import PromptRecord, read_prompts, write_prompts
from golden_noise.dataset.reader import NoisePromptDataset, RowTable, load_splits, split_prompts
from golden_noise.dataset.writer import DatasetWriter, embedded_prompts, present_keys

__all__ = [
    "DatasetManifest",
    "DatasetWriter",
    "NoisePromptDataset",
    "PromptRecord",
    "RowTable",
    "embedded_prompts",
    "load_splits",
    "present_keys",
    "read_prompts",
    "split_prompts",
    "write_prompts",
]
