"""The base model to fine-tune: a GGUF (dequantized) or a Hugging Face folder, and where to train.

torch, transformers and peft are the optional `finetune` extra: they are imported inside
these functions, so the rest of Ajuste runs without them and says how to install them.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import AjusteError


class FinetuneError(AjusteError):
    """A fine-tune that can't run as asked."""


class MissingExtraError(FinetuneError):
    """The optional fine-tune dependencies are not installed."""


@dataclass
class LoadedBase:
    """A base model and its tokenizer, loaded once and reusable by several runs."""

    model: Any
    tokenizer: Any
    source: str
    pad_id: int = field(init=False)

    def __post_init__(self) -> None:
        pad = self.tokenizer.pad_token_id
        self.pad_id = self.tokenizer.eos_token_id if pad is None else pad


def require_extra() -> None:
    """Fail with the install command when the optional fine-tune stack is missing."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as error:
        raise MissingExtraError(
            f"The fine-tune needs PyTorch, transformers and peft ({error}): run "
            "`pip install torch==2.13.0` then `pip install '.[finetune]'`."
        ) from error


def load_base(base: Path | str) -> LoadedBase:
    """Load a GGUF (dequantized to float32) or a Hugging Face model for training or merging."""
    require_extra()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(base).expanduser()
    options: dict[str, Any] = {}
    if path.is_file():
        source, options["gguf_file"] = str(path.parent), path.name
    elif path.is_dir():
        if not (path / "config.json").is_file():
            raise FinetuneError(f"{base} has no config.json: pass a Hugging Face model folder.")
        source = str(path)
    elif (
        path.suffix == ".gguf" or str(base).startswith(("/", ".", "~")) or str(base).count("/") > 1
    ):
        raise FinetuneError(f"No model at {base}: pass a GGUF file or a Hugging Face model folder.")
    else:
        source = str(base)  # a hub name: works only with network access or a warm HF cache
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
        model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **options)
    except ImportError as error:
        raise MissingExtraError(f"{error}: run `pip install '.[finetune]'`.") from error
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FinetuneError(
            f"Could not load the base model {base} ({reason}): pass a local GGUF file or "
            "Hugging Face model folder (download hub models with network access first)."
        ) from error
    if getattr(model, "hf_quantizer", None) is not None:  # GGUF weights are dequantized now
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if not tokenizer.chat_template:
        raise FinetuneError(f"{base} has no chat template: use an instruct (chat) model.")
    model.eval()
    return LoadedBase(model, tokenizer, str(base))


def pick_device(wanted: str) -> Any:
    """The torch device to train on: `auto` takes a GPU when torch sees one."""
    import torch

    if wanted == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(wanted)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as error:
        raise FinetuneError(
            f"torch cannot use the device {wanted!r} ({error}): set AJUSTE_FINETUNE__DEVICE "
            "to auto or cpu."
        ) from error
    return device
