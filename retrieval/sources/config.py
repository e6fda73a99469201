"""`sources.yaml`: the declared sources, each with a kind, a schedule and who may search it.

Retrieval's own kinds register here with their settings model and a factory (`registry`);
`bot` adds the Slack kind, so this package never imports Slack. A malformed file is refused
with its line and the reason.
"""

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from retrieval.errors import AjusteError
from retrieval.sources import confluence, gdrive, github, notion
from retrieval.sources.base import Source
from retrieval.sources.registry import (
    KINDS,
    SourceConfig,
    SourceContext,
    build_source,
    parse_duration,
    register_kind,
)


class SourcesFileError(AjusteError):
    """sources.yaml is malformed."""


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


register_kind("files", FilesConfig, _files)
register_kind("web", WebConfig, _web)
register_kind("git", GitConfig, _git)
# Kinds that read a service's API: one module each, with its settings model and `build`.
register_kind(confluence.KIND, confluence.ConfluenceConfig, confluence.build)
register_kind(gdrive.KIND, gdrive.GdriveConfig, gdrive.build)
register_kind(github.KIND, github.GithubConfig, github.build)
register_kind(notion.KIND, notion.NotionConfig, notion.build)

__all__ = [
    "KINDS",
    "FilesConfig",
    "GitConfig",
    "SourceConfig",
    "SourceContext",
    "SourcesFileError",
    "WebConfig",
    "build_source",
    "load_sources",
    "parse_duration",
    "register_kind",
]
