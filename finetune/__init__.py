"""Fine-tuning: team knowledge and feedback → LoRA → GGUF, evaluated and versioned."""
