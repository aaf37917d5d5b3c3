"""Shared fixtures: tiny random models (built once per session) and offline settings."""

from __future__ import annotations

import os

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under pytest-xdist every worker would take all cores for torch's threads; on a 16-core
# machine with 8 workers that oversubscription made a CPU training fixture 100x slower.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKERS))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    from tuneproof.testing import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    from tuneproof.testing import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
