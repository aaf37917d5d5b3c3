"""Untrusted model folders: pickle weights that would run code are never loaded; remote code stays off."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from tuneproof.errors import ModelLoadError
from tuneproof.models import load_model


class _Payload:
    """Unpickling this runs code: it writes the marker file (what an attacker's .bin would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture
def evil(tmp_path):
    """``evil(path)`` plants a pickle at ``path`` that would write ``tmp_path/PWNED`` when loaded."""
    marker = tmp_path / "PWNED"
    data = pickle.dumps(_Payload(marker))
    pickle.loads(data)  # the payload really runs code when unpickled: the tests below can fail
    assert marker.read_text() == "code ran"
    marker.unlink()

    def plant(path: Path) -> Path:
        path.write_bytes(data)
        return marker

    return plant


def _copy(src: Path, dst: Path, keep_safetensors: bool) -> Path:
    shutil.copytree(src, dst)
    if not keep_safetensors:
        for f in dst.glob("*.safetensors"):
            f.unlink()
    return dst


def test_a_pickle_only_model_folder_is_refused_unopened(tiny_llama_dir, tmp_path, evil):
    model_dir = _copy(tiny_llama_dir, tmp_path / "m", keep_safetensors=False)
    marker = evil(model_dir / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as err:
        load_model(model_dir, "sft")
    assert "pytorch_model.bin" in str(err.value) and "TUNEPROOF_ALLOW_PICKLE=1" in str(err.value)
    assert not marker.exists()


def test_beside_safetensors_the_pickle_is_never_opened(tiny_llama_dir, tmp_path, evil):
    model_dir = _copy(tiny_llama_dir, tmp_path / "m", keep_safetensors=True)
    marker = evil(model_dir / "pytorch_model.bin")
    model, _ = load_model(model_dir, "sft")
    assert model is not None and not marker.exists()


def test_a_pickled_adapter_is_refused_unopened(tiny_llama_dir, tmp_path, evil):
    from peft import LoraConfig, get_peft_model

    from tuneproof.evaluate._loading import load_tuned

    base, _ = load_model(tiny_llama_dir, "sft")
    adapter = tmp_path / "adapter"
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(adapter)
    model, _ = load_tuned(adapter, tiny_llama_dir, "sft")  # the clean adapter loads
    marker = evil(adapter / "adapter_model.bin")
    load_tuned(adapter, tiny_llama_dir, "sft")  # beside safetensors: PEFT reads those only
    assert not marker.exists()
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="adapter_model.bin"):
        load_tuned(adapter, tiny_llama_dir, "sft")
    assert not marker.exists()


def test_a_pickled_embedding_model_is_refused_unopened(tiny_bert_dir, tmp_path, evil):
    from tuneproof.audit.embed import Embedder

    model_dir = _copy(tiny_bert_dir, tmp_path / "e", keep_safetensors=False)
    marker = evil(model_dir / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickle"):
        Embedder(str(model_dir))
    assert not marker.exists()


def test_remote_code_in_a_model_folder_never_runs(tiny_llama_dir, tmp_path):
    model_dir = _copy(tiny_llama_dir, tmp_path / "m", keep_safetensors=True)
    marker = tmp_path / "PWNED"
    (model_dir / "evil_modeling.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil_modeling.Config", "AutoModelForCausalLM": "evil_modeling.Model"}
    (model_dir / "config.json").write_text(json.dumps(config))
    try:
        load_model(model_dir, "sft")
    except ModelLoadError:
        pass  # refusing is fine too; running the file is not
    assert not marker.exists()
    # control: asked to trust it, transformers does import the file (so the check above can fail)
    with pytest.raises(Exception):
        load_model(model_dir, "sft", trust_remote_code=True)
    assert marker.read_text() == "code ran"


def test_the_user_can_allow_a_trusted_pickle(tiny_llama_dir, tmp_path, monkeypatch):
    import torch

    model, _ = load_model(tiny_llama_dir, "sft")
    trusted = _copy(tiny_llama_dir, tmp_path / "t", keep_safetensors=False)
    torch.save(model.state_dict(), trusted / "pytorch_model.bin")  # plain tensors, written here
    with pytest.raises(ModelLoadError):
        load_model(trusted, "sft")
    monkeypatch.setenv("TUNEPROOF_ALLOW_PICKLE", "1")
    loaded, _ = load_model(trusted, "sft")
    name, p = next(iter(model.state_dict().items()))
    assert torch.equal(loaded.state_dict()[name], p)
