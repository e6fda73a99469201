"""`kind: slack` in sources.yaml: which channels, how far back, how often a full pass.

Apart from the source itself, so sources.yaml can be read without loading the Slack SDK.
"""

from pydantic import Field, field_validator

from retrieval.sources.config import SourceConfig, parse_duration


class SlackConfig(SourceConfig):
    channels: list[str] = Field(min_length=1)  # channel IDs to index
    lookback: str = "14d"  # how far back a normal run looks for new messages and replies
    full_pass_every: str = "1d"

    @field_validator("lookback", "full_pass_every")
    @classmethod
    def _windows(cls, value: str) -> str:
        parse_duration(value)
        return value
