"""The model card: README.md for a shipped or exported model folder, written from report.json.

Every statement comes from the run's facts (the sections of ``report.json``), and the card
never claims more than the evaluation proved: a model whose gain is not proven is called
that in the title and the first line, and a section whose stage did not run says so and why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from tuneproof._io import atomic_write

__all__ = ["model_card", "read_report", "write_card"]


def read_report(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's facts: ``report.json`` when present, else collected from the run folder now."""
    path = Path(run_dir) / "report.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # unreadable: collect again from the run's own files
    from tuneproof.report._collect import collect

    return collect(Path(run_dir))


def write_card(run_dir: str | os.PathLike, folder: str | os.PathLike, *, export: dict[str, Any] | None = None) -> Path:
    """Write ``folder/README.md``, the card of the run's model; return its path."""
    path = Path(folder) / "README.md"
    adapter = Path(run_dir) / "train" / "model" / "adapter_config.json"
    try:
        settings = json.loads(adapter.read_text(encoding="utf-8")) if adapter.is_file() else None
    except (OSError, ValueError):
        settings = None
    atomic_write(path, model_card(read_report(run_dir), export=export, adapter=settings))
    return path


def model_card(report: dict[str, Any], *, export: dict[str, Any] | None = None,
               adapter: dict[str, Any] | None = None) -> str:  # fmt: skip
    """The card's Markdown from ``report.json``'s content.

    Args:
        report: the content of ``report.json``.
        export: the export's facts (``export.json``), when the card goes into an export.
        adapter: the trained adapter's ``adapter_config.json``: its rank and alpha are the ones
            used, which the search may have changed from the config's.
    """
    s = report.get("sections", {})
    cfg = _config(s)
    parts = [_head(report, s, cfg), _model(cfg, s, adapter), _data(s), _hyperparameters(s), _proof(s), _forgetting(s),
             _limits(s), _use(cfg, export)]  # fmt: skip
    return "\n\n".join(p for p in parts if p).rstrip() + "\n"


def _config(s: dict[str, Any]) -> dict[str, Any]:
    text = (s.get("reproducibility") or {}).get("config")
    try:
        cfg = yaml.safe_load(text) if text else {}
    except yaml.YAMLError:
        cfg = {}
    return cfg if isinstance(cfg, dict) else {}


def _n(x: Any, spec: str = ".4g") -> str:
    return format(x, spec) if isinstance(x, (int, float)) and not isinstance(x, bool) else "n/a"


def _not_run(section: dict[str, Any]) -> str:
    return f"Not run: {section.get('reason') or 'no record of this stage'}."


def _head(report: dict[str, Any], s: dict[str, Any], cfg: dict[str, Any]) -> str:
    v = s.get("verdict") or {}
    ship = bool(v.get("ship"))
    status = "proven improvement" if ship else "NOT PROVEN"
    lines = [f"# {report.get('name', 'model')}: {cfg.get('task', '?')} fine-tune of {(cfg.get('model') or {}).get('name', '?')} ({status})", ""]
    if ship:
        lines.append(f"**Verdict: {v.get('headline')}.** The evaluation proved a gain over the reference on the "
                     "held-out test split described below; that is all it proved.")  # fmt: skip
    else:
        lines.append(f"**Verdict: {v.get('headline') or 'not proven: do not ship'}** (evaluation verdict: "
                     f"{v.get('verdict') or 'not evaluated'}). tuneproof did not ship this model: its gain over the "
                     "reference is not proven. Use it for inspection only.")  # fmt: skip
    return "\n".join(lines)


def _model(cfg: dict[str, Any], s: dict[str, Any], adapter: dict[str, Any] | None) -> str:
    m = cfg.get("model") or {}
    method = m.get("method", "?")
    detail = ""
    if method == "lora" and adapter:
        targets = adapter.get("target_modules")
        names = targets if isinstance(targets, str) else ", ".join(sorted({str(t).rsplit(".", 1)[-1] for t in targets or []}))
        detail = f" (rank {adapter.get('r')}, alpha {adapter.get('lora_alpha')}, modules {names})"
    elif method == "lora":
        lora = m.get("lora") or {}
        alpha = lora.get("alpha") or 2 * int(lora.get("r") or 0)
        detail = f" (as configured: rank {lora.get('r')}, alpha {alpha}, modules {lora.get('target_modules')})"
    elif method == "freeze":
        detail = f" (top {m.get('trainable_blocks')} blocks trained)"
    rows = [f"- Base model: `{m.get('name', '?')}`", f"- Task: {cfg.get('task', '?')}",
            f"- Method: {method}{detail}", f"- Max length: {m.get('max_length', '?')} tokens"]  # fmt: skip
    if m.get("labels"):
        rows.append(f"- Labels: {', '.join(map(str, m['labels']))}")
    d = (s.get("training") or {}).get("data") or {}
    if d.get("params_trainable"):
        rows.append(f"- Trainable parameters: {d['params_trainable']:,} of {_n(d.get('params_total'), ',')}")
    return "## Model\n\n" + "\n".join(rows)


def _data(s: dict[str, Any]) -> str:
    a, t = s.get("audit") or {}, (s.get("training") or {}).get("data") or {}
    rows = []
    cur = a.get("curation") or {}
    if cur:
        by = ", ".join(f"{k} {v}" for k, v in (cur.get("removed_by_check") or {}).items()) or "none"
        rows.append(f"- Curation: {cur.get('input_rows')} input rows = {cur.get('kept')} kept + {cur.get('removed')} "
                    f"removed ({by}) + {cur.get('unreadable')} unreadable")  # fmt: skip
    else:
        rows.append(f"- Curation: {_not_run(a) if a.get('status') != 'ok' else 'no curation counts recorded'}")
    split = (a.get("split") or {}).get("counts")
    if split:
        rows.append(f"- Split: {split.get('train')} train, {split.get('val')} validation, {split.get('test')} test "
                    "(near-duplicates kept in one split)")  # fmt: skip
    if t.get("train_records") is not None:
        rows.append(f"- Trained on {t['train_records']} records ({_n(t.get('train_tokens'), ',')} tokens, "
                    f"{t.get('truncated', 0)} truncated), validated on {t.get('val_records')}")  # fmt: skip
    ab = s.get("curation-ab") or {}
    if ab.get("status") == "ok":
        rows.append(f"- Curation A/B: {ab.get('decision')}: {ab.get('why')}")
    return "## Data\n\n" + "\n".join(rows)


def _hyperparameters(s: dict[str, Any]) -> str:
    tr, search, sweep = s.get("training") or {}, s.get("search") or {}, s.get("lr-sweep") or {}
    if tr.get("status") != "ok":
        return "## Hyperparameters\n\n" + _not_run(tr)
    d = tr.get("data") or {}
    rows = [f"- Learning rate {_n(d.get('lr'))}, chosen by: {d.get('lr_source') or 'the config'}",
            f"- Steps: {tr.get('global_step')} (best checkpoint at step {tr.get('best_step')}, monitored by "
            f"{tr.get('monitor')}{'; stopped early' if tr.get('stopped_early') else ''})"]  # fmt: skip
    if sweep.get("status") == "ok":
        rows.append(f"- Learning-rate sweep: best {_n(sweep.get('best_lr'))} in its short runs; it suggested "
                    f"{_n(sweep.get('train_lr'))} for the final training's length")  # fmt: skip
    else:
        rows.append(f"- Learning-rate sweep: {_not_run(sweep)}")
    if search.get("status") == "ok" and search.get("best"):
        best = search["best"]
        rows.append(f"- Search: {search.get('n_trials')} trials (Optuna TPE); best trial {best.get('number')} "
                    f"(validation loss {_n(best.get('value'))}): {json.dumps(best.get('params'))}")  # fmt: skip
    else:
        rows.append(f"- Search: {_not_run(search)}")
    if tr.get("overfitting"):
        rows.append(f"- The overfitting guard fired at step {tr.get('guard_step')}: {tr.get('guard_reason')}")
    return "## Hyperparameters\n\n" + "\n".join(rows)


def _proof(s: dict[str, Any]) -> str:
    ev = s.get("evaluation") or {}
    if ev.get("status") != "ok":
        return "## Proof\n\n" + _not_run(ev) + " Nothing about this model's quality is proven."
    d = ev.get("delta") or {}
    conf = d.get("confidence") or 0.95
    better = "higher" if ev.get("higher_is_better", True) else "lower"
    rows = [f"- Metric: {ev.get('metric')} ({better} is better) on {ev.get('n_records')} held-out test records",
            f"- Tuned {_n(d.get('tuned'))} vs reference ({ev.get('reference')}) {_n(d.get('reference'))}: delta "
            f"{_n(d.get('value'), '+.4g')}, {conf:.0%} CI [{_n(d.get('ci_low'), '+.4g')}, {_n(d.get('ci_high'), '+.4g')}] "
            f"(paired bootstrap)",
            f"- Verdict: {ev.get('verdict')}: {ev.get('verdict_reason')}"]  # fmt: skip
    for name, r in (ev.get("references") or {}).items():
        if name != ev.get("reference"):
            rows.append(f"- Against {r.get('description') or name} ({_n(r.get('score'))}): {r.get('verdict')}")
    return "## Proof\n\n" + "\n".join(rows)


def _forgetting(s: dict[str, Any]) -> str:
    f = s.get("forgetting") or {}
    if f.get("status") != "ok":
        return "## Forgetting check\n\n" + _not_run(f) + " Whether general ability changed is not measured."
    change = f.get("relative_change")
    flag = "FLAGGED: above" if f.get("flagged") else "within"
    return ("## Forgetting check\n\n"
            f"- Perplexity on {f.get('n_texts')} general texts ({f.get('source')}): base {_n(f.get('base_perplexity'))}, "
            f"tuned {_n(f.get('tuned_perplexity'))} ({_n(change, '+.1%')}; {flag} the limit {_n(f.get('limit'), '.0%')})")  # fmt: skip


def _limits(s: dict[str, Any]) -> str:
    rows = ["- The proof holds for data like the test split only: records drawn from the same source as the "
            "training data. Other inputs are untested."]  # fmt: skip
    for c in (s.get("verdict") or {}).get("causes") or []:
        rows.append(f"- {c.get('code')}: {c.get('evidence')}")
    for r in (s.get("preflight") or {}).get("risks") or []:
        if r.get("level") in ("high", "medium"):
            rows.append(f"- Preflight risk ({r['level']}) {r.get('code')}: {r.get('evidence')}")
    return "## Known limits\n\n" + "\n".join(rows)


_HOW = {
    "merged": "`AutoModelForCausalLM.from_pretrained(folder)` (classifiers: `AutoModelForSequenceClassification`; "
    "labels.json holds the label names in index order), or `tuneproof evaluate --tuned folder`",
    "gguf": "llama.cpp (`llama-cli -m FILE.gguf`) or transformers (`from_pretrained(folder, gguf_file=FILE.gguf)`); "
    "the chat template is stored in the file",
    "ollama": "`ollama create NAME -f Modelfile` in this folder, then `ollama run NAME`",
}


def _use(cfg: dict[str, Any], export: dict[str, Any] | None) -> str:
    if not export:
        return ""
    rows = [f"- Format: {export.get('format')}; files: {', '.join(export.get('files') or [])}"]
    if export.get("prompt_format"):
        rows.append(f"- Prompt format (as in training): {export['prompt_format']}")
    rows.append(f"- Load it: {_HOW[export.get('format')]}")
    for check in export.get("checks") or []:
        rows.append(f"- Round trip {check['file']}: largest next-token logit difference from the merged model "
                    f"{_n(check['max_abs_diff'])} ({_n(check['relative_diff'])} of the largest logit; tolerance "
                    f"{_n(check['tolerance'])}): {'passed' if check['passed'] else 'FAILED'}")  # fmt: skip
    return "## This export\n\n" + "\n".join(rows)
