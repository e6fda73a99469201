"""Settings groups that retrieval needs; the bot composes them into its root settings."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, DirectoryPath, Field, SecretStr, model_validator

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_SPARSE_MODEL = "Qdrant/bm25"
# The Snowball stemmers fastembed's BM25 has: the language of a team's documents and questions.
SparseLanguage = Literal[
    "arabic", "danish", "dutch", "english", "finnish", "french", "german", "greek", "hungarian",
    "italian", "norwegian", "portuguese", "romanian", "russian", "spanish", "swedish", "tamil",
    "turkish",
]  # fmt: skip


class EmbeddingSettings(BaseModel):
    model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="fastembed dense model name",
    )
    model_path: DirectoryPath | None = Field(
        None,
        description="Folder holding the dense model files (model.onnx, tokenizer.json, ...); "
        "empty: the pulled default, or fastembed's own download for another model",
    )
    sparse_model: str = Field(DEFAULT_SPARSE_MODEL, description="fastembed sparse model name")
    sparse_model_path: DirectoryPath | None = Field(
        None,
        description="Folder for the sparse model (for BM25: its stopword lists, <language>.txt); "
        "empty: the pulled default",
    )
    sparse_language: SparseLanguage = Field(
        "english",
        description="Language of the BM25 keywords: its Snowball stemmer and stopword list "
        "(english, spanish, french, ...); the index must be rebuilt when it changes",
    )
    batch_size: Annotated[int, Field(ge=1, le=1024)] = Field(
        32, description="Chunks embedded per batch"
    )
    threads: Annotated[int, Field(ge=0)] = Field(
        0, description="ONNX Runtime threads for embedding; 0 lets it choose"
    )


class QdrantSettings(BaseModel):
    url: AnyHttpUrl | None = Field(
        None,
        description="Qdrant server URL, e.g. http://localhost:6333; empty: embedded Qdrant "
        "under the data dir",
    )
    api_key: SecretStr | None = Field(None, description="Qdrant server API key")
    path: Path | None = Field(
        None, description="Folder of the embedded index (Qdrant Edge); empty: <data dir>/qdrant"
    )
    collection: str = Field("ajuste", min_length=1, description="Collection name")
    timeout: Annotated[float, Field(gt=0)] = Field(
        10.0, description="Seconds to wait for a Qdrant server"
    )
    shard_number: Annotated[int, Field(ge=1, le=64)] = Field(
        1, description="Shards of a new collection, for a Qdrant cluster"
    )
    replication_factor: Annotated[int, Field(ge=1, le=16)] = Field(
        1, description="Copies of each shard in a Qdrant cluster"
    )
    on_disk: bool = Field(
        False, description="Keep vectors and payloads of a new collection on disk, not in RAM"
    )
    quantization: Literal["none", "int8"] = Field(
        "none", description="int8: scalar-quantize dense vectors (4x less RAM, near-equal recall)"
    )
    hnsw_m: Annotated[int, Field(ge=4, le=128)] = Field(16, description="HNSW graph degree")
    hnsw_ef_construct: Annotated[int, Field(ge=4, le=1024)] = Field(
        100, description="HNSW build-time search depth"
    )


class RetrievalSettings(BaseModel):
    top_k: Annotated[int, Field(ge=1, le=50)] = Field(
        3, description="Chunks given to the model per question (fewer if they don't fit)"
    )
    candidates: Annotated[int, Field(ge=1, le=500)] = Field(
        30, description="Candidates each of dense and sparse search hand to fusion"
    )
    dense_weight: Annotated[float, Field(gt=0)] = Field(
        2.0, description="Weight of dense (meaning) ranking in the fusion"
    )
    sparse_weight: Annotated[float, Field(gt=0)] = Field(
        1.0, description="Weight of BM25 (keyword) ranking in the fusion"
    )
    short_query_words: Annotated[int, Field(ge=0, le=20)] = Field(
        0, description="Queries of at most this many words weigh keywords more; 0: off"
    )
    short_query_sparse_boost: Annotated[float, Field(gt=0)] = Field(
        2.0, description="Factor on the BM25 weight for short queries"
    )
    heading_context: bool = Field(
        True, description="Embed each chunk with the headings it sits under"
    )
    min_similarity: Annotated[float, Field(ge=-1, le=1)] = Field(
        0.3,
        description="Cosine similarity below which a chunk counts as unrelated, unless "
        "it holds every keyword of the question",
    )
    chunk_tokens: Annotated[int, Field(ge=32, le=512)] = Field(
        200, description="Chunk size in embedding-model tokens, heading context included"
    )
    chunk_overlap: Annotated[int, Field(ge=0, le=256)] = Field(
        32, description="Tokens repeated between neighbouring chunks of one section"
    )
    max_file_mb: Annotated[float, Field(gt=0)] = Field(
        10.0, description="Files larger than this many MB are skipped with a message"
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "RetrievalSettings":
        if self.chunk_overlap >= self.chunk_tokens // 2:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be under half of chunk_tokens "
                f"({self.chunk_tokens})"
            )
        return self
