"""Fold a LoRA adapter straight into a llama-architecture GGUF, then quantize it.

No torch and no converter: the base GGUF's tensors are dequantized with gguf-py, the adapter's
B·A·(alpha/r) is added to the matching weights (rows of q and k permuted the way llama.cpp
stores them), and every key of the base is kept, so the tokenizer and chat template are the
base's own. This is what `ajuste models pull` runs on the committed adapter: seconds, offline.
"""

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from finetune.base import FinetuneError

_MODULES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])\.weight$")


def adapter_deltas(adapter: Path) -> dict[str, np.ndarray]:
    """GGUF tensor name → the weight change the adapter makes, in Hugging Face row order."""
    from safetensors.numpy import load_file

    config = json.loads((adapter / "adapter_config.json").read_text())
    rank = int(config["r"])
    scale = float(config["lora_alpha"]) / (rank**0.5 if config.get("use_rslora") else rank)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in load_file(str(adapter / "adapter_model.safetensors")).items():
        match = _KEY.search(key)
        if match is None or match.group(2) not in _MODULES:
            raise FinetuneError(f"{adapter}: unexpected adapter tensor {key}")
        name = f"blk.{match.group(1)}.{_MODULES[match.group(2)]}.weight"
        pairs.setdefault(name, {})[match.group(3)] = value.astype(np.float32)
    return {name: (ab["B"] @ ab["A"]) * scale for name, ab in pairs.items()}


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face → llama.cpp row order of a q or k projection (rotary halves interleaved)."""
    rows = weights.shape[0]
    return (
        weights.reshape(heads, 2, rows // heads // 2, weights.shape[1])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _field_value(field: Any) -> Any:
    return field.contents()


def merge_into_gguf(
    base: Path, adapter: Path, out: Path, *, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write `out` (F16 for changed tensors, the rest as stored): base + adapter."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    deltas = adapter_deltas(adapter)
    reader = GGUFReader(base)
    arch = str(_field_value(reader.fields["general.architecture"]))
    if arch != "llama":
        raise FinetuneError(f"{base} is a {arch} model: the grounded adapter is for llama")
    heads = int(_field_value(reader.fields["llama.attention.head_count"]))
    kv_heads = int(_field_value(reader.fields.get("llama.attention.head_count_kv") or heads))
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(out), arch=arch, endianess=reader.endianess)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(name, _field_value(field), kind, sub_type=sub)
    for key, value in (metadata or {}).items():
        writer.add_string(key, value)
    unused = set(deltas)
    for tensor in reader.tensors:
        delta = deltas.get(tensor.name)
        if delta is None:
            writer.add_tensor(
                tensor.name,
                tensor.data,
                raw_shape=tensor.data.shape,
                raw_dtype=tensor.tensor_type,
            )
            continue
        unused.discard(tensor.name)
        weights = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if ".attn_q." in tensor.name:
            delta = _permute(delta, heads)
        elif ".attn_k." in tensor.name:
            delta = _permute(delta, kv_heads)
        if weights.shape != delta.shape:
            raise FinetuneError(
                f"The adapter does not fit {base}: {tensor.name} is {weights.shape}, "
                f"the adapter changes {delta.shape}"
            )
        writer.add_tensor(tensor.name, (weights + delta).astype(np.float16))
    if unused:
        raise FinetuneError(f"The adapter changes tensors {base} lacks: {sorted(unused)[:3]}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
