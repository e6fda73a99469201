"""Killing a real `ajuste index` process mid-run, as an out-of-memory kill or a power cut would."""

import signal
import subprocess
import time
from pathlib import Path

from retrieval.runs import RunLog


def kill_mid_run(run: subprocess.Popen, data: Path, source: str, after: float) -> None:
    """SIGKILL `run` `after` seconds into its run of `source`; the run log then says interrupted."""
    runs = RunLog(data)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        last = runs.last(source)
        if last is not None and last.pid == run.pid:
            break
        time.sleep(0.1)
    time.sleep(after)
    run.send_signal(signal.SIGKILL)
    run.wait(30)
    assert run.returncode == -signal.SIGKILL
    last = runs.last(source)
    assert last is not None and last.state == "interrupted"
