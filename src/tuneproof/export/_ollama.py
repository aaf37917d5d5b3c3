"""An Ollama Modelfile beside the GGUF: the prompt format training used, greedy decoding, the stop tokens.

The template is not translated from the chat template's Jinja by hand: the tokenizer renders
a conversation whose contents are markers, exactly as training and evaluation format a prompt
(:func:`tuneproof.evaluate._sft.prompt_text`), and the markers become Ollama's ``{{ .System }}``
and ``{{ .Prompt }}``. So the served prompt is the trained one, byte for byte, for a system
turn (when the template has one) and a user turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneproof._io import atomic_write
from tuneproof.errors import TuneproofError

__all__ = ["modelfile", "ollama_template"]

_PROMPT, _SYSTEM = "\x00PROMPT\x00", "\x00SYSTEM\x00"


def ollama_template(tok: Any) -> str:
    """The Go template Ollama fills with the user's prompt (and system message, where the format has one)."""
    from tuneproof.evaluate._sft import prompt_text

    user = prompt_text(tok, [{"role": "user", "content": _PROMPT}]).replace(_PROMPT, "{{ .Prompt }}")
    try:
        system = prompt_text(tok, [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _PROMPT}])
    except Exception:  # a template that rejects a system turn (Jinja raise_exception): user turns only
        system = None
    if not system or _SYSTEM not in system:
        return user
    system = system.replace(_SYSTEM, "{{ .System }}").replace(_PROMPT, "{{ .Prompt }}")
    return f"{{{{ if .System }}}}{system}{{{{ else }}}}{user}{{{{ end }}}}"


def modelfile(gguf_name: str, tok: Any, model: Any, *, max_new_tokens: int) -> str:
    """The Modelfile's text: FROM the GGUF, TEMPLATE as trained, greedy decoding, stop at end-of-turn."""
    from tuneproof.evaluate._sft import _eos_ids

    template = ollama_template(tok)
    if '"""' in template:
        raise TuneproofError('Ollama export: the prompt format contains """, which a Modelfile cannot quote. '
                             "Fix: use the GGUF file with a runner that reads the chat template from it.")  # fmt: skip
    stops = dict.fromkeys(t for t in tok.convert_ids_to_tokens(_eos_ids(model, tok)) if t)
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""',
             "# greedy decoding and the generation budget, as the evaluation scored the model",
             "PARAMETER temperature 0", f"PARAMETER num_predict {max_new_tokens}"]  # fmt: skip
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n"


def write_modelfile(out: Path, gguf_name: str, tok: Any, model: Any, *, max_new_tokens: int) -> str:
    atomic_write(out / "Modelfile", modelfile(gguf_name, tok, model, max_new_tokens=max_new_tokens))
    return "Modelfile"
