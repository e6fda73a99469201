"""APScheduler running real jobs: due sources run at once, runs never overlap."""

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from retrieval.runs import RunLog, SourceRun
from retrieval.scheduler import SourceScheduler
from retrieval.sources.config import FilesConfig


def config(name: str, **schedule: str) -> FilesConfig:
    return FilesConfig(name=name, kind="files", paths=[Path("/tmp")], **schedule)


def finished_run(runs: RunLog, name: str, ago: timedelta) -> None:
    when = (datetime.now(UTC) - ago).isoformat(timespec="seconds")
    runs.record(SourceRun(name, started=when, finished=when))


def test_missed_runs_coalesce_into_one_run_at_start(tmp_path: Path):
    runs = RunLog(tmp_path)
    finished_run(runs, "fresh", timedelta(minutes=5))
    finished_run(runs, "missed", timedelta(hours=5))  # five hourly runs missed
    calls: list[str] = []
    scheduler = SourceScheduler(
        sources=[
            config("never-run", every="1h"),
            config("fresh", every="1h"),
            config("missed", cron="0 * * * *"),
            config("manual"),
        ],
        run=calls.append,
        runs=runs,
    )
    assert scheduler.start() == ["never-run", "fresh", "missed"]
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert sorted(calls) == ["missed", "never-run"]  # once each; "fresh" waits its hour
        next_fresh = scheduler.scheduler.get_job("fresh").next_run_time
        assert next_fresh > datetime.now(UTC) + timedelta(minutes=50)
    finally:
        scheduler.shutdown()


def test_interval_jobs_repeat_without_overlapping(tmp_path: Path):
    active = 0
    most = 0
    count = 0
    lock = threading.Lock()

    def slow_run(name: str) -> None:
        nonlocal active, most, count
        with lock:
            active += 1
            most = max(most, active)
            count += 1
        time.sleep(1.5)  # longer than the interval
        with lock:
            active -= 1

    scheduler = SourceScheduler(
        sources=[config("busy", every="1s")], run=slow_run, runs=RunLog(tmp_path)
    )
    scheduler.start()
    try:
        time.sleep(4.5)
    finally:
        scheduler.shutdown()
    assert count >= 2 and most == 1


def test_a_failing_run_does_not_stop_the_scheduler(tmp_path: Path):
    calls: list[str] = []

    def run(name: str) -> None:
        calls.append(name)
        if name == "broken":
            raise RuntimeError("server down")

    scheduler = SourceScheduler(
        sources=[config("broken", every="1s"), config("fine", every="1s")],
        run=run,
        runs=RunLog(tmp_path),
    )
    scheduler.start()
    try:
        time.sleep(2.5)
    finally:
        scheduler.shutdown()
    assert calls.count("broken") >= 2 and calls.count("fine") >= 2
