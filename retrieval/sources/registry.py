"""What a source kind registers: its sources.yaml settings model and a factory.

The base of every kind's settings (name, schedule, scope) lives here, apart from the parsing
of sources.yaml, so a kind's module can import it while `config` imports the kinds.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retrieval.settings import RetrievalSettings
from retrieval.sources.base import Source

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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
