"""`sources.yaml`: the declared sources, each with a kind, a schedule and who may search it.

Kinds register here with their settings model and a factory; `bot` adds the Slack kind, so
this package never imports Slack. A malformed file is refused with its line and the reason.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retrieval.errors import AjusteError
from retrieval.settings import RetrievalSettings
from retrieval.sources.base import Source

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SourcesFileError(AjusteError):
    """sources.yaml is malformed."""


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration like 90s, 30m, 6h, 1d or 1w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: str
    every: str | None = None  # "30m", "6h", "1d"
    cron: str | None = None  # "0 6 * * 1-5"
    visible_in: list[str] | None = None  # channel IDs that may search it; None: all

    @field_validator("every")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value).total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronTrigger.from_crontab(value)
            except ValueError as error:
                raise ValueError(f"bad cron expression '{value}': {error}") from error
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> "SourceConfig":
        if self.every and self.cron:
            raise ValueError("give either `every` or `cron`, not both")
        return self

    @property
    def schedule(self) -> str:
        return (
            f"every {self.every}" if self.every else f"cron {self.cron}" if self.cron else "manual"
        )


class FilesConfig(SourceConfig):
    paths: list[Path] = Field(min_length=1)
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class WebConfig(SourceConfig):
    urls: list[str] = Field(default_factory=list)
    sitemap: str | None = None
    max_per_host: int = Field(2, ge=1, le=16)
    timeout: float = Field(15.0, gt=0)

    @model_validator(mode="after")
    def _something_to_fetch(self) -> "WebConfig":
        if not self.urls and not self.sitemap:
            raise ValueError("a web source needs `urls`, a `sitemap`, or both")
        for url in [*self.urls, *([self.sitemap] if self.sitemap else [])]:
            if not re.match(r"^https?://[^\s/]+", url):
                raise ValueError(f"'{url}' is not an http(s) URL")
        return self


class GitConfig(SourceConfig):
    path: Path
    include: list[str] = Field(
        default_factory=lambda: ["*.md", "*.rst", "*.txt", "*.html", "*.htm"]
    )
    url: str | None = None  # e.g. https://git.example.com/team/repo/blob/main/{path}


@dataclass(frozen=True)
class SourceContext:
    """What a source may need besides its own settings."""

    settings: RetrievalSettings
    state_dir: Path  # a folder for the source's own bookkeeping (cursors, last full pass)

    @property
    def max_bytes(self) -> int:
        return int(self.settings.max_file_mb * 1048576)


Factory = Callable[[Any, SourceContext], Source]
KINDS: dict[str, tuple[type[SourceConfig], Factory]] = {}


def register_kind(kind: str, model: type[SourceConfig], factory: Factory) -> None:
    KINDS[kind] = (model, factory)


def build_source(config: SourceConfig, context: SourceContext) -> Source:
    return KINDS[config.kind][1](config, context)


def load_sources(path: Path) -> list[SourceConfig]:
    """The sources declared in `path`; an absent file declares none."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    try:
        document = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error)
        raise SourcesFileError(f"{path}{where}: not valid YAML ({reason})") from None
    data = yaml.safe_load(text) or {}
    entries = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise SourcesFileError(f"{path}: expected a top-level `sources:` list")
    nodes = _entry_nodes(document)
    configs: list[SourceConfig] = []
    for index, entry in enumerate(entries):
        line = nodes[index].start_mark.line + 1 if index < len(nodes) else 0
        configs.append(_parse_entry(path, line, entry))
    names = [config.name for config in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SourcesFileError(f"{path}: source names must be unique: {', '.join(duplicates)}")
    for config in configs:
        _resolve_paths(config, path.parent)
    return configs


def _entry_nodes(document: yaml.Node | None) -> list[yaml.Node]:
    if isinstance(document, yaml.MappingNode):
        for key, value in document.value:
            if key.value == "sources" and isinstance(value, yaml.SequenceNode):
                return list(value.value)
    return []


def _parse_entry(path: Path, line: int, entry: Any) -> SourceConfig:
    where = f"{path} line {line}"
    if not isinstance(entry, dict):
        raise SourcesFileError(f"{where}: each source is a mapping with a name and a kind")
    name = entry.get("name", "?")
    kind = entry.get("kind")
    if kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise SourcesFileError(f"{where}: source '{name}' has unknown kind '{kind}' ({known})")
    try:
        return KINDS[kind][0].model_validate(entry)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'source'}: "
            + item["msg"].removeprefix("Value error, ")
            for item in error.errors()
        )
        raise SourcesFileError(f"{where}: source '{name}': {problems}") from None


def _resolve_paths(config: SourceConfig, base: Path) -> None:
    """Relative paths in the file are relative to the file's own folder."""
    if isinstance(config, FilesConfig):
        config.paths = [p if p.is_absolute() else (base / p).resolve() for p in config.paths]
    elif isinstance(config, GitConfig) and not config.path.is_absolute():
        config.path = (base / config.path).resolve()
    secrets = getattr(config, "secrets_file", None)  # API kinds: a token or key file
    if isinstance(secrets, Path) and not secrets.is_absolute():
        config.secrets_file = (base / secrets).resolve()  # type: ignore[attr-defined]


def _files(config: FilesConfig, context: SourceContext) -> Source:
    from retrieval.sources.files import FilesSource

    return FilesSource(
        config.name,
        config.paths,
        include=config.include,
        exclude=config.exclude,
        max_bytes=context.max_bytes,
    )


def _web(config: WebConfig, context: SourceContext) -> Source:
    from retrieval.sources.web import WebSource

    return WebSource(
        config.name,
        urls=config.urls,
        sitemap=config.sitemap,
        max_per_host=config.max_per_host,
        timeout=config.timeout,
        max_bytes=context.max_bytes,
    )


def _git(config: GitConfig, context: SourceContext) -> Source:
    from retrieval.sources.git import GitSource

    return GitSource(config.name, config.path, include=config.include, url=config.url)


def _api_kinds() -> None:
    """Kinds that read a service's API: one module each, with its settings model and `build`."""
    from retrieval.sources import confluence, gdrive, github, notion

    register_kind(confluence.KIND, confluence.ConfluenceConfig, confluence.build)
    register_kind(gdrive.KIND, gdrive.GdriveConfig, gdrive.build)
    register_kind(github.KIND, github.GithubConfig, github.build)
    register_kind(notion.KIND, notion.NotionConfig, notion.build)


register_kind("files", FilesConfig, _files)
register_kind("web", WebConfig, _web)
register_kind("git", GitConfig, _git)
_api_kinds()
