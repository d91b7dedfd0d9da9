"""Options shared by the commands: --pipeline, --npnet/--npnet-file, seed lists, and the
options every config dataclass field gets (`ConfigOptions`)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import typer

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.seeds import check_seed_range

PromptsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--prompts",
        "-p",
        help="Prompts, repeatable: a .txt/.csv/.jsonl file, toy:SPLIT:N[:SEED], a named set "
        "(drawbench, pickapic, hpdv2, geneval, parti), a hub dataset id owner/name[:split], or "
        "else the prompt itself, e.g. -p 'a red cube'.",
    ),
]
ColumnOption = Annotated[str | None, typer.Option(help="csv/jsonl/hub column holding the prompts.")]
PipelineOption = Annotated[
    str, typer.Option(help="'toy', a local diffusers pipeline folder, or a hub id.")
]
NPNetOption = Annotated[
    str | None,
    typer.Option(help="NPNet: save_pretrained folder, .pth/.safetensors file or hub id."),
]
NPNetFileOption = Annotated[
    str | None, typer.Option(help="File inside --npnet (folder or hub repo), e.g. sdxl.pth.")
]
StepsOption = Annotated[
    int | None, typer.Option(help="Denoising steps [toy: its default; else the pipeline's].")
]
Command = TypeVar("Command", bound=Callable[..., Any])
KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY
GuidanceOption = Annotated[
    float | None, typer.Option(help="Guidance scale [toy: its default; else the pipeline's].")
]


def pipeline_call_kwargs(
    pipeline: str,
    steps: int | None,
    guidance: float | None,
    height: int | None,
    width: int | None,
) -> dict[str, Any]:
    """The pipeline-call arguments the user gave; a built-in pipeline's sampler defaults
    (the toy world's for `toy`) for what is not given.

    Other pipelines keep their own call defaults for whatever is not given.
    """
    from golden_noise.adapters.loading import builtin_pipeline
    from golden_noise.core.validate import pipeline_call

    pipeline_call(steps, guidance, height, width)
    builtin = builtin_pipeline(pipeline)
    if builtin is not None:
        defaults = builtin.call_defaults()
        steps = defaults["steps"] if steps is None else steps
        guidance = defaults["guidance"] if guidance is None else guidance
    given = {
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "height": height,
        "width": width,
    }
    return {key: value for key, value in given.items() if value is not None}


def parse_seeds(text: str) -> list[int]:
    """Seeds from "0,1,2" or ranges "0-3" (inclusive), mixed: "0-2,10"."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, sep, last = part.partition("-")
        try:
            bounds = (int(first), int(last)) if sep else (int(part), int(part))
        except ValueError:
            raise GoldenNoiseError(
                f"seeds must be integers or ranges like 0-3, comma-separated; got {part!r}"
            ) from None
        if bounds[1] < bounds[0]:
            raise GoldenNoiseError(f"seed range must ascend; got {part!r}")
        check_seed_range(*bounds)
        seeds.extend(range(bounds[0], bounds[1] + 1))
    if not seeds:
        raise GoldenNoiseError(f"expected at least one seed; got {text!r}")
    return seeds


def load_npnet_option(source: str | None, filename: str | None, pipeline: str) -> Any:
    """The NPNet named by --npnet/--npnet-file, or a built-in pipeline's shipped one (the toy
    world's for `toy`)."""
    from golden_noise.adapters.loading import BUILTIN_PIPELINES, builtin_pipeline
    from golden_noise.npnet import NPNet

    if source is not None:
        return NPNet.from_pretrained(source, filename=filename)
    builtin = builtin_pipeline(pipeline)
    if builtin is not None:
        return builtin.npnet()
    names = " and ".join(repr(name) for name in BUILTIN_PIPELINES)
    raise GoldenNoiseError(
        f"--npnet is required for pipeline {pipeline!r} (only {names} has a built-in NPNet); e.g. "
        "--npnet Klayand/GoldenNoiseModel --npnet-file sdxl.pth"
    )


class ConfigOptions:
    """One typer option per field of a config dataclass, so a new field needs no CLI edit.

    Each option takes the field's name (underscores as dashes), type and default, and
    `help[field]` when given. A boolean field is one English flag: `--cpu` when it defaults
    to False; `--no-svd` when it defaults to True (a leading `use_` is dropped), or the name
    `rename` gives it. A dict field takes a JSON object. `unset`: fields whose option
    defaults to None, meaning "not given" (`values` leaves them out), e.g. overrides of a
    configuration chosen elsewhere; `every=True` makes that hold for all fields.
    """

    def __init__(
        self,
        cls: type,
        *,
        help: Mapping[str, str] | None = None,
        skip: Collection[str] = (),
        rename: Mapping[str, str] | None = None,
        unset: Collection[str] = (),
        every: bool = False,
    ) -> None:
        self.help, self.rename = help or {}, rename or {}
        hints = typing.get_type_hints(cls)
        self.fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
        self.types = {name: hints[name] for name in self.fields}
        self.unset = set(self.fields) if every else set(unset)

    def _default(self, name: str) -> Any:
        field = self.fields[name]
        if name in self.unset:
            return None
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default

    def _negated(self, name: str) -> bool:
        """A boolean field that defaults to True: its flag turns it off."""
        return self.types[name] is bool and self.fields[name].default is True

    def _param(self, name: str) -> str:
        if self._negated(name):
            return self.rename.get(name, "no_" + name.removeprefix("use_"))
        return self.rename.get(name, name)

    def parameters(self) -> list[inspect.Parameter]:
        """The options, as keyword-only parameters for `with_options`."""
        params = []
        for name, kind in self.types.items():
            param, default, text = self._param(name), self._default(name), self.help.get(name)
            option = typer.Option(help=text)
            if kind is bool:  # a flag: present or not
                option, default = typer.Option("--" + param.replace("_", "-"), help=text), False
            elif typing.get_origin(kind) is dict:
                kind = str | None
            elif default is None:
                kind = kind | None
            annotation = Annotated[kind, option]
            params.append(
                inspect.Parameter(param, KEYWORD_ONLY, default=default, annotation=annotation)
            )
        return params

    def values(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The fields' values from the command's `options`, in the dataclass's own terms."""
        values = {}
        for name, kind in self.types.items():
            given = options[self._param(name)]
            if kind is bool:
                if given or name not in self.unset:
                    values[name] = given != self._negated(name)
            elif given is not None or name not in self.unset:
                is_json = typing.get_origin(kind) is dict and isinstance(given, str)
                values[name] = _json_object(name, given) if is_json else given
        return values


def _json_object(name: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise GoldenNoiseError(
            f"--{name.replace('_', '-')} must be a JSON object, e.g. '{{\"img_size\": 64}}'; "
            f"got {text!r}"
        )
    return value


def with_options(*groups: ConfigOptions) -> Callable[[Command], Command]:
    """Add every group's options to a command that takes `**options` after its own."""

    def add(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True).parameters.values()
        params = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
        params += [p for group in groups for p in group.parameters()]
        command.__signature__ = inspect.Signature(params)
        return command

    return add


def warn_overlong_prompts(adapter: Any, prompts: list[str]) -> None:
    """One console line (ours, shown without --verbose) when prompts are longer than the text
    encoder takes: the pipeline keeps their first tokens and only its logger would say so."""
    overlong = adapter.overlong_prompts(list(prompts))
    if overlong:
        from rich.console import Console
        from rich.text import Text

        first = prompts[overlong[0]]
        Console(stderr=True).print(
            Text(
                f"warning: {len(overlong)} prompt(s) are longer than the text encoder takes; "
                f"only the first {adapter.prompt_token_limit} tokens of each are kept "
                f"(e.g. #{overlong[0]}: {first[:60]!r})"
            ),
            soft_wrap=True,
        )


def read_prompts(sources: Sequence[str], column: str | None = None) -> tuple[list[str], list]:
    """`read_prompt_sources` for a command, saying on stderr when a toy draw kept fewer
    distinct prompts than it asked for (`draw_notes`)."""
    from rich.console import Console
    from rich.text import Text

    from golden_noise.prompts.sources import draw_notes, read_prompt_sources

    texts, groups = read_prompt_sources(sources, column)
    for note in draw_notes(sources):
        Console(stderr=True).print(Text(note), soft_wrap=True)
    return texts, groups
