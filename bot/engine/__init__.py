"""The answer engine: question → retrieval → grounded prompt → model → answer with evidence."""
