"""Peak memory of one answer over an existing index: `python -m bench.rss DATA_DIR`."""

import sys
from pathlib import Path

from bot.services import Services
from bot.settings import Settings


def peak_rss_mb() -> float:
    """This process's high-water mark (VmHWM: unlike ru_maxrss, not inherited from a parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    settings = Settings(_env_file=None, data_dir=Path(sys.argv[1]))  # type: ignore[call-arg]
    with Services(settings, holder="bench rss") as services:
        services.answers.answer("How many vacation days do I get?")
    print(f"{peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
