"""Retrieval: sources → documents → chunks → embeddings → Qdrant, and hybrid search back out."""
