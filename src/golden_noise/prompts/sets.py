"""Named benchmark prompt sets: `--prompts drawbench | pickapic | hpdv2 | geneval | parti`.

Each name stands for public files (a Hugging Face hub dataset, or for GenEval a file pinned
in its authors' GitHub repository) and the column that holds the prompts. Files are fetched
once into the usual Hugging Face cache (hub sets, through `huggingface_hub.snapshot_download`,
so `HF_HUB_OFFLINE`, `HF_HUB_CACHE` and `hf download` work as for any hub file) or into
`<HF_HOME>/golden-noise/prompt-sets` (GenEval). Offline and not cached, the error names the
dataset and the command that pre-downloads it.

- drawbench: hub `sayakpaul/drawbench`, column `Prompts`, group `Category` (200 prompts of
  the Imagen paper); Apache-2.0.
- pickapic: hub `yuvalkirstain/pickapic_v1_no_images`, split test_unique, column `caption`
  (the paper's prompt source); MIT.
- hpdv2: hub `zhwang/HPDv2`, `benchmark/*.json` (lists of strings), group = style file
  (anime, concept-art, paintings, photo; 3,200 prompts); Apache-2.0.
- geneval: GitHub `djghosh13/geneval` `prompts/evaluation_metadata.jsonl` pinned at a commit
  (not published on the hub), column `prompt`, group `tag` (553 prompts); MIT.
- parti: hub `nateraw/parti-prompts`, `PartiPrompts.tsv`, column `Prompt`, group `Category`
  (1,632 prompts); Apache-2.0.

Licences are those the sets' cards and repositories state; check them before you
redistribute images made from the prompts.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.text_lines import text_lines

FILE_STEM = "<file>"  # `group` value: the prompt's group is its file's name (HPDv2's styles)


@dataclass(frozen=True)
class PromptSet:
    """Where a named prompt set lives and how to read it.

    `files`: glob patterns inside the hub repo (`repo`) or, with `url`, the one file's name.
    `column`: the prompt column of table files; None for files that are JSON lists of
    strings. `group`: the column with each prompt's category, or `FILE_STEM`.
    """

    name: str
    files: tuple[str, ...]
    column: str | None
    group: str | None
    licence: str
    repo: str | None = None
    url: str | None = None

    @property
    def where(self) -> str:
        return f"hub dataset {self.repo}" if self.repo else f"file {self.url}"

    def download_hint(self, cache_dir: Path | None) -> str:
        """The command that pre-downloads this set on a machine with network access."""
        if self.repo:
            patterns = " ".join(f"'{p}'" for p in self.files)
            target = f" --cache-dir {cache_dir}" if cache_dir else ""
            return f"hf download {self.repo} --repo-type dataset --include {patterns}{target}"
        return f"curl -L --create-dirs -o {url_cache_path(self, cache_dir)} {self.url}"


PROMPT_SETS: dict[str, PromptSet] = {
    s.name: s
    for s in (
        PromptSet("drawbench", ("*.csv", "*.parquet"), "Prompts", "Category", "Apache-2.0",
                  repo="sayakpaul/drawbench"),
        PromptSet("pickapic", ("*test_unique*.parquet",), "caption", None, "MIT",
                  repo="yuvalkirstain/pickapic_v1_no_images"),
        PromptSet("hpdv2", ("benchmark/*.json",), None, FILE_STEM, "Apache-2.0",
                  repo="zhwang/HPDv2"),
        PromptSet("geneval", ("evaluation_metadata.jsonl",), "prompt", "tag", "MIT",
                  url="https://raw.githubusercontent.com/djghosh13/geneval/"
                  "d927da8e42fde2b1b5cd743da4df5ff83c1654ff/prompts/evaluation_metadata.jsonl"),
        PromptSet("parti", ("PartiPrompts.tsv",), "Prompt", "Category", "Apache-2.0",
                  repo="nateraw/parti-prompts"),
    )
}  # fmt: skip


def url_cache_path(prompt_set: PromptSet, cache_dir: Path | None) -> Path:
    """Where a set that is a plain file (GenEval) is kept once downloaded."""
    if cache_dir is None:
        from huggingface_hub import constants

        cache_dir = Path(constants.HF_HOME) / "golden-noise" / "prompt-sets"
    return Path(cache_dir) / prompt_set.name / prompt_set.files[0]


def _offline() -> bool:
    from golden_noise.core.weights import hub_offline

    return hub_offline()


def _hub_files(prompt_set: PromptSet, cache_dir: Path | None) -> list[Path]:
    from huggingface_hub import snapshot_download

    folder = Path(
        snapshot_download(
            prompt_set.repo,
            repo_type="dataset",
            allow_patterns=list(prompt_set.files),
            cache_dir=cache_dir,
            local_files_only=_offline(),
        )
    )
    found = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and any(fnmatch.fnmatch(path.relative_to(folder).as_posix(), p) for p in prompt_set.files)
    )
    if not found:
        raise FileNotFoundError(f"no file matching {list(prompt_set.files)} in {folder}")
    return found


def _url_file(prompt_set: PromptSet, cache_dir: Path | None) -> list[Path]:
    path = url_cache_path(prompt_set, cache_dir)
    if not path.is_file():
        if _offline():
            raise FileNotFoundError(f"{path} is not downloaded and HF_HUB_OFFLINE is set")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with urllib.request.urlopen(prompt_set.url, timeout=60) as response:
            partial.write_bytes(response.read())
        os.replace(partial, path)
    return [path]


def _records(path: Path) -> Iterable[dict | str]:
    """The rows of one file: dicts for tables, strings for a JSON list of strings."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
    elif suffix == ".jsonl":
        for line in text_lines(path.read_text(encoding="utf-8")):
            if line.strip():
                yield json.loads(line)
    elif suffix == ".json":
        yield from json.loads(path.read_text(encoding="utf-8"))
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet
        except ImportError as error:
            raise GoldenNoiseError(
                f"{path.name} is a parquet file; reading it needs the `datasets` package "
                "(pyarrow): pip install 'golden-noise[prompts]'"
            ) from error
        yield from pyarrow.parquet.read_table(path).to_pylist()
    else:
        raise GoldenNoiseError(f"{path}: expected .csv, .tsv, .jsonl, .json or .parquet")


def _prompt_and_group(record: dict | str, prompt_set: PromptSet, path: Path) -> tuple[str, str]:
    if prompt_set.column is None:
        if not isinstance(record, str):
            raise GoldenNoiseError(f"{path}: expected a JSON list of prompt strings")
        text = record
    else:
        if not isinstance(record, dict) or prompt_set.column not in record:
            columns = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise GoldenNoiseError(
                f"{path}: prompt set {prompt_set.name!r} expects a column "
                f"{prompt_set.column!r}; found {columns}"
            )
        text = str(record[prompt_set.column])
    if prompt_set.group == FILE_STEM:
        group = path.stem
    elif prompt_set.group is not None and isinstance(record, dict):
        group = str(record.get(prompt_set.group, ""))
    else:
        group = ""
    return text, group


def load_prompt_set(name: str, cache_dir: Path | str | None = None) -> list[tuple[str, str]]:
    """(prompt, group) pairs of the named set in file order ("" when a set has no groups).

    `cache_dir`: the Hugging Face hub cache to use (default: huggingface_hub's), and for
    GenEval the folder that holds its file.
    """
    prompt_set = PROMPT_SETS[name]
    cache = Path(cache_dir) if cache_dir is not None else None
    try:
        files = _hub_files(prompt_set, cache) if prompt_set.repo else _url_file(prompt_set, cache)
    except Exception as error:  # hub, network and file errors: the user needs one message
        raise GoldenNoiseError(
            f"prompt set {name!r} is the {prompt_set.where} (files {list(prompt_set.files)}); "
            f"it is not in the local cache and could not be downloaded ({error}). "
            f"Pre-download it where there is network: {prompt_set.download_hint(cache)} "
            "(then copy the cache here), or pass a local copy: --prompts FILE"
            + (f" --column {prompt_set.column}" if prompt_set.column else "")
        ) from error
    return [
        _prompt_and_group(record, prompt_set, path) for path in files for record in _records(path)
    ]
