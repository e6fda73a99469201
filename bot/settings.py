"""All settings, from the environment (prefix AJUSTE_, groups joined by __) and `.env`.

Built once by the entry point and handed down; nothing deeper reads the environment.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from finetune.settings import FinetuneSettings
from retrieval.errors import AjusteError
from retrieval.settings import EmbeddingSettings, QdrantSettings, RetrievalSettings

ENV_PREFIX = "AJUSTE_"


def _comma_separated(value: Any) -> Any:
    """Lists in the environment are written `a,b,c`."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class LlmSettings(BaseModel):
    model_path: FilePath | None = Field(
        None, description="GGUF file of the chat model; empty: the pulled default model"
    )
    default_model: Literal["grounded", "stock"] = Field(
        "grounded",
        description="The pulled default: grounded (SmolLM2-135M fine-tuned by Ajuste to answer "
        "from its sources) or stock (SmolLM2-135M-Instruct as published)",
    )
    hf_repo: str | None = Field(
        None, description="Hugging Face repo to download a GGUF from (needs internet)"
    )
    hf_file: str | None = Field(
        None, description="File name or glob of the GGUF in hf_repo; empty: the first *.gguf"
    )
    n_ctx: Annotated[int, Field(ge=512, le=131072)] = Field(
        2048, description="Context window in tokens: prompt, sources, history and answer"
    )
    n_threads: Annotated[int, Field(ge=0, le=256)] = Field(
        0, description="CPU threads for generation; 0: one per core"
    )
    max_tokens: Annotated[int, Field(ge=16, le=8192)] = Field(
        320, description="Longest answer in tokens"
    )
    refusal_threshold: Annotated[float, Field(ge=0, le=1)] = Field(
        0.85,
        description="The model may decline only when its refusal is at least this likely "
        "as its first word (0: whenever it likes; in-process models only)",
    )
    focus_bias: Annotated[float, Field(ge=0, le=10)] = Field(
        1.5,
        description="Logit bonus, while the model writes, for the tokens of the source "
        "sentences the question is most about (0: off)",
    )
    focus_sentences: Annotated[int, Field(ge=1, le=5)] = Field(
        1, description="How many of the question's closest source sentences focus_bias favours"
    )
    copy_code: bool = Field(
        True,
        description="Code in an answer (inline or a fenced block) is copied from its sources, "
        "never made up (in-process models only)",
    )
    temperature: Annotated[float, Field(ge=0, le=2)] = Field(
        0.2, description="Sampling temperature; 0 always picks the likeliest token"
    )
    top_p: Annotated[float, Field(gt=0, le=1)] = Field(0.9, description="Nucleus sampling")
    repeat_penalty: Annotated[float, Field(ge=1, le=2)] = Field(
        1.1, description="Penalty on repeated tokens"
    )
    seed: int = Field(42, description="Sampling seed, for repeatable answers")
    system_prompt: str | None = Field(
        None, description="Replaces the built-in instructions to the model"
    )
    max_queue: Annotated[int, Field(ge=0, le=1000)] = Field(
        20, description="Questions that may wait for the model; beyond, askers hear it is busy"
    )
    server_url: Annotated[list[AnyHttpUrl], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated OpenAI-compatible llama.cpp servers (llama_cpp.server or "
        "llama-server) to generate with, e.g. http://llm:8000; empty: the model runs in this "
        "process",
    )
    server_api_key: SecretStr | None = Field(None, description="API key of the model servers")
    server_model: str | None = Field(
        None, description="Model name to ask the servers for; empty: the server's default"
    )
    server_slots: Annotated[int, Field(ge=1, le=64)] = Field(
        1, description="Answers generated at once on each server (its --parallel slots)"
    )
    server_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        120, description="Seconds to wait for a model server's next token before giving up"
    )

    _split_urls = field_validator("server_url", mode="before")(_comma_separated)


class SlackSettings(BaseModel):
    bot_token: SecretStr | None = Field(None, description="Bot token (xoxb-…)")
    app_token: SecretStr | None = Field(
        None, description="App-level token for Socket Mode (xapp-…)"
    )
    signing_secret: SecretStr | None = Field(None, description="Signing secret for HTTP mode")
    admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated Slack user IDs of admins"
    )
    api_url: AnyHttpUrl = Field(
        AnyHttpUrl("https://slack.com/api/"), description="Slack Web API base URL"
    )
    channel_sources: dict[str, list[str]] = Field(
        default_factory=dict,
        description='JSON map of channel ID to the sources it may search, e.g. {"C0123": '
        '["handbook"]}; channels not listed search every source',
    )
    streaming: bool = Field(
        True, description="Stream answers with Slack's chat streaming methods where allowed"
    )
    update_interval: Annotated[float, Field(ge=0.2, le=10)] = Field(
        1.0, description="Seconds between two updates of a streaming answer (rate limits)"
    )
    state: Literal["sqlite", "qdrant"] = Field(
        "sqlite",
        description="Where the bot keeps handled events, followed threads, answers and votes: "
        "sqlite (a file in the data dir, one replica) or qdrant (the Qdrant server, shared by "
        "several replicas)",
    )
    port: Annotated[int, Field(ge=1, le=65535)] = Field(
        3000,
        description="Port of serve's HTTP server: Slack's events in HTTP mode; /healthz, "
        "/readyz and /metrics in both modes",
    )

    _split_admins = field_validator("admins", mode="before")(_comma_separated)


class SchedulerSettings(BaseModel):
    enabled: bool = Field(True, description="Re-index sources on their schedules inside serve")
    sources_file: Path | None = Field(
        None, description="Sources declaration; empty: <data dir>/sources.yaml"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    data_dir: Path = Field(Path("data"), description="Where the index, models and all state live")
    log_level: str = Field("WARNING", description="DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["text", "json"] = Field(
        "text", description="text for people, json for log collectors (one object a line)"
    )
    llm: LlmSettings = Field(default_factory=LlmSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    qdrant: QdrantSettings = Field(default_factory=QdrantSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def registry_dir(self) -> Path:
        return self.data_dir / "registry"


def env_name(location: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part) for part in location).upper()


def load_settings(**overrides: Any) -> Settings:
    """Settings from environment and .env; a bad value becomes one line naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            location = tuple(part for part in item["loc"] if isinstance(part, str))
            value = item.get("input")
            shown = "" if isinstance(value, dict) else f"={value!r}"
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{env_name(location)}{shown}: {message}")
        raise AjusteError("Bad setting " + "; ".join(problems)) from None


def render_env_example() -> str:
    """`.env.example`: every setting with its description and default, from the models here."""
    lines = [
        "# Ajuste settings. Copy to .env and uncomment what you change.",
        "# Each can also be set in the environment. Made by `ajuste config example`.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"# --- {name} ---")
            for sub_name, sub_field in annotation.model_fields.items():
                lines += _describe(env_name((name, sub_name)), sub_field)
            lines.append("")
        else:
            lines += _describe(env_name((name,)), field)
    lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _describe(variable: str, field: Any) -> list[str]:
    default = field.get_default(call_default_factory=True)
    if default is None:
        shown = ""
    elif isinstance(default, list):
        shown = ",".join(default)
    else:
        shown = str(default)
    return [f"# {field.description}", f"# {variable}={shown}"]
