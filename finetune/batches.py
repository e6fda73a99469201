"""Chat examples as token ids with labels on the assistant turns only, and seeded batches."""

import random
from typing import Any

from finetune.base import FinetuneError


def _render(tokenizer: Any, messages: list[dict[str, str]], generation: bool = False) -> str:
    if not messages:
        return ""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    return str(text)


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[range]]:
    """The rendered chat and the character ranges of assistant turns (with end-of-turn)."""
    text = _render(tokenizer, messages)
    spans, cursor = [], 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:index], generation=True)
        through = _render(tokenizer, messages[: index + 1])
        if text.startswith(through) and through.startswith(before) and len(before) >= cursor:
            start, end = len(before), len(through)
        else:  # a template that rewrites earlier turns: find the content itself
            start = text.find(message["content"], cursor)
            if start < 0:
                raise FinetuneError("The chat template drops assistant text: use another model.")
            end = start + len(message["content"])
            eos = tokenizer.eos_token or ""
            end += len(eos) if eos and text.startswith(eos, end) else 0
        while end > start and text[end - 1].isspace():
            end -= 1
        spans.append(range(start, end))
        cursor = end
    return text, spans


def encode(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids and labels: -100 everywhere but on the assistant's tokens; truncated."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])[:max_length]
    labels = [
        token if any(start in span for span in spans) else -100
        for token, (start, _) in zip(ids, encoded["offset_mapping"], strict=False)
    ]
    return ids, labels


def batch_indices(count: int, step: int, batch_size: int, seed: int) -> list[int]:
    """Examples of a step: a pure function of (seed, step), so a resumed run sees the same."""
    chosen, orders = [], {}
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, index = divmod(position, count)
        if epoch not in orders:
            orders[epoch] = list(range(count))
            random.Random(seed * 1_000_003 + epoch).shuffle(orders[epoch])
        chosen.append(orders[epoch][index])
    return chosen


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int, device: Any) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = [row[0] + [pad_id] * (width - len(row[0])) for row in rows]
    labels = [row[1] + [-100] * (width - len(row[1])) for row in rows]
    mask = [[1] * len(row[0]) + [0] * (width - len(row[0])) for row in rows]
    # positions followed by a label, found here: on a GPU, finding them there would wait for it
    keep = [j for j in range(width - 1) if any(row[j + 1] != -100 for row in labels)]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "keep": torch.tensor(keep, device=device),
    }
