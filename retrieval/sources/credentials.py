"""Secrets of API sources: named in sources.yaml, read from the environment or a file.

A token is never written in sources.yaml, never logged and never shown: `config show` and
`sources list` say only where it comes from and whether it is set.
"""

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr, model_validator

from retrieval.sources.base import SourceError
from retrieval.sources.registry import SourceConfig

_INLINE = ("token", "api_token", "api_key", "password", "secret", "credentials")


class TokenConfig(SourceConfig):
    """A source whose API needs a secret: `token_env` names the variable, or `secrets_file`."""

    default_env: ClassVar[str] = ""  # each kind's usual variable, e.g. GITHUB_TOKEN

    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secrets_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict):
            inline = [key for key in _INLINE if key in data]
            if inline:
                raise ValueError(
                    f"`{inline[0]}` does not belong in sources.yaml: put the secret in the "
                    f"environment variable named by `token_env` (default {cls.default_env}) "
                    "or in a file named by `secrets_file`"
                )
        return data

    @property
    def secret_origin(self) -> str:
        """Where the secret comes from, for status and `config show`; never the secret."""
        if self.secrets_file is not None:
            return f"file {self.secrets_file}" + (
                "" if self.secrets_file.is_file() else " (missing)"
            )
        env = self.token_env or self.default_env
        return f"${env}" + (" (set)" if os.environ.get(env) else " (not set)")

    def secret(self) -> SecretStr:
        """The secret, or SourceError saying where to put it."""
        if self.secrets_file is not None:
            try:
                text = self.secrets_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise SourceError(
                    f"source '{self.name}': secrets_file {self.secrets_file} could not be read "
                    f"({error.strerror or error})"
                ) from None
            if not text:
                raise SourceError(
                    f"source '{self.name}': secrets_file {self.secrets_file} is empty"
                )
            return SecretStr(text)
        env = self.token_env or self.default_env
        value = os.environ.get(env, "").strip()
        if not value:
            raise SourceError(
                f"source '{self.name}' needs a token: set {env} or name a `secrets_file`"
            )
        return SecretStr(value)
