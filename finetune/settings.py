"""Settings of the offline fine-tune (`ajuste finetune`, an optional extra)."""

from typing import Annotated

from pydantic import BaseModel, Field


class FinetuneSettings(BaseModel):
    lora_rank: Annotated[int, Field(ge=1, le=256)] = Field(8, description="LoRA rank")
    learning_rate: Annotated[float, Field(gt=0, lt=1)] = Field(
        1e-3,
        description="Learning rate of the LoRA run (1e-3 teaches a 135M model a fact in 30 steps)",
    )
    steps: Annotated[int, Field(ge=1)] = Field(30, description="Training steps")
    batch_size: Annotated[int, Field(ge=1)] = Field(8, description="Examples per step")
    seed: int = Field(42, description="Seed for data split and training")
    device: str = Field(
        "auto",
        description="Where to train: auto (a GPU when torch sees one), cpu, cuda, cuda:1, mps",
    )
