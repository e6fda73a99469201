"""Runs each declared source on its own interval or cron schedule (APScheduler).

Runs of one source never overlap (the runner's lock), and runs missed while the process was
down coalesce into one run at start.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from retrieval.runner import SourceBusyError
from retrieval.runs import RunLog, SourceRun
from retrieval.sources.config import SourceConfig, parse_duration

log = logging.getLogger(__name__)


def trigger_for(config: SourceConfig) -> BaseTrigger | None:
    if config.every:
        return IntervalTrigger(seconds=parse_duration(config.every).total_seconds(), timezone=UTC)
    if config.cron:
        return CronTrigger.from_crontab(config.cron, timezone=UTC)
    return None


class SourceScheduler:
    def __init__(
        self,
        *,
        sources: list[SourceConfig],
        run: Callable[[str], object],
        runs: RunLog,
    ) -> None:
        self.sources = sources
        self.run = run
        self.runs = runs
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> list[str]:
        """Schedule every source that has a schedule; returns their names."""
        scheduled = []
        for config in self.sources:
            trigger = trigger_for(config)
            if trigger is None:
                continue
            extra = {"next_run_time": datetime.now(UTC)} if self.due(config, trigger) else {}
            self.scheduler.add_job(
                self._run, trigger, args=[config.name], id=config.name, name=config.name, **extra
            )
            scheduled.append(config.name)
        self.scheduler.start()
        return scheduled

    def due(self, config: SourceConfig, trigger: BaseTrigger) -> bool:
        """Whether a run was missed since the last one (then it runs once, now)."""
        last = self.runs.last(config.name)
        if last is None:
            return True
        previous = datetime.fromisoformat(last.finished or last.started)
        following = trigger.get_next_fire_time(previous, previous)
        return following is not None and following <= datetime.now(UTC)

    def _run(self, name: str) -> None:
        try:
            self.run(name)
        except SourceBusyError as busy:
            log.info("scheduled run skipped: %s", busy)
        except Exception as error:  # recorded in the run log; other sources carry on
            log.warning("scheduled run of %s failed: %s", name, error)

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


def next_run(config: SourceConfig, last: SourceRun | None) -> datetime | None:
    """When `config`'s schedule runs it next (now, when a run was missed); None: no schedule."""
    trigger = trigger_for(config)
    if trigger is None:
        return None
    now = datetime.now(UTC)
    previous = datetime.fromisoformat(last.finished or last.started) if last else None
    following = trigger.get_next_fire_time(previous, now)
    return max(following, now) if following is not None else None
