"""Render the collected facts as one self-contained HTML page: inline CSS, base64 PNG plots,
no script and no network. Every value from the run (dataset text above all) is escaped."""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any, Callable

from tuneproof.report import _plots

# No script may run and nothing may be fetched: a stray <script> in the data stays inert even
# if some escaping were ever missed.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4} pre{background:#f7f7f7;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-word;font-size:.85em}
.notrun{color:#777;font-style:italic} .ship{background:#e3f6e3;border:2px solid #2a2;padding:.8em}
.noship{background:#fde8e8;border:2px solid #c22;padding:.8em} .neutral{background:#f1f1f1;border:2px solid #999;padding:.8em}
.high{color:#b00;font-weight:bold} .medium{color:#a60} .low{color:#555} img{max-width:100%}
.rec{white-space:pre-wrap;font-family:monospace;font-size:.85em}
"""


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def num(x: Any, digits: int = 4) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return e(x)
    if isinstance(x, float) and not math.isfinite(x):
        return e(x)
    return e(f"{x:.{digits}g}" if isinstance(x, float) else f"{x:,}")


def signed(x: Any) -> str:
    return e(f"{x:+.4g}") if isinstance(x, (int, float)) and not isinstance(x, bool) else e(x)


def table(head: list[str] | None, rows: list[list[str]]) -> str:
    """Cells are already-escaped HTML; the header is escaped here."""
    th = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{th}{body}</table>"


def kv_table(items: dict[str, Any]) -> str:
    return table(None, [[e(k), num(v)] for k, v in items.items() if v is not None])


def image(b64: str | None, alt: str) -> str:
    if not b64:
        return f'<p class="notrun">no data to plot for {e(alt)}</p>'
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{b64}">'


def _verdict(s: dict[str, Any]) -> str:
    ship = s.get("ship")
    cls = "ship" if ship else ("noship" if ship is False else "neutral")
    out = [f'<div class="{cls}"><strong>{e(s.get("headline"))}</strong>']
    if s.get("verdict"):
        out.append(f"<br>verdict: {e(s['verdict'])}")
    d = s.get("delta")
    if isinstance(d, dict):
        conf = d.get("confidence", 0.95)
        out.append(
            f"<br>{e(d.get('metric'))}: reference {num(d.get('reference'))} → tuned {num(d.get('tuned'))}, "
            f"difference {signed(d.get('value'))} ({num(round(100 * conf) if isinstance(conf, float) else conf)}% CI "
            f"[{signed(d.get('ci_low'))}, {signed(d.get('ci_high'))}], paired bootstrap, {num(d.get('resamples'))} resamples)"
        )
    if s.get("verdict_reason"):
        out.append(f"<br>{e(s['verdict_reason'])}")
    if s.get("model_path"):
        out.append(f"<br>deliverable: <code>{e(s['model_path'])}</code>")
    out.append("</div>")
    causes = s.get("causes") or []
    if causes:
        rows = [[e(c.get("code")), e(c.get("evidence")), e(c.get("next"))] for c in causes]
        out.append("<h3>Most likely causes</h3>" + table(["cause", "evidence", "what to try next"], rows))
    return "".join(out)


def _preflight(s: dict[str, Any]) -> str:
    out = []
    if s.get("estimates"):
        out.append("<h3>Estimates for the planned budget</h3>" + kv_table(s["estimates"]))
    mde = s.get("min_detectable_effect")
    if isinstance(mde, dict):
        out.append(
            f"<p>Minimum detectable effect on {e(mde.get('metric'))}: <strong>{num(mde.get('value'))}</strong> "
            f"with {num(mde.get('n_test'))} test records (power {num(mde.get('power'))}, alpha {num(mde.get('alpha'))}).</p>"
        )
    risks = s.get("risks") or []
    if risks:
        rows = [[f'<span class="{e(r.get("level"))}">{e(r.get("level"))}</span>', e(r.get("code")), e(r.get("evidence")), e(r.get("fix"))] for r in risks]
        out.append(table(["level", "risk", "evidence", "fix"], rows))
    else:
        out.append("<p>No risks found.</p>")
    return "".join(out)


def _audit(s: dict[str, Any]) -> str:
    out = []
    if s.get("stats"):
        out.append(kv_table(s["stats"]))
    for p in s.get("problems") or []:
        out.append(f"<p>⚠ {e(p)}</p>")
    cur = s.get("curation") or {}
    if cur:
        keys = ("input_rows", "kept", "removed", "unreadable")
        out.append("<h3>Curation</h3>" + table(list(keys), [[num(cur.get(k)) for k in keys]]))
    rows = []
    for name, c in (s.get("checks") or {}).items():
        reasons = "<br>".join(f"{e(k)}: {num(v)}" for k, v in (c.get("by_reason") or {}).items()) or "–"
        rows.append([e(name), e(c.get("status")), num(c.get("findings")), num(c.get("records")), reasons])
    out.append("<h3>Checks</h3>" + table(["check", "status", "findings", "records", "per reason"], rows))
    for name, c in (s.get("checks") or {}).items():
        for code, examples in (c.get("examples") or {}).items():
            ex_rows = [[e(x.get("id")), e(x.get("reason")), f'<div class="rec">{e(x.get("text") if x.get("text") is not None else "(record text not in removed.jsonl)")}</div>'] for x in examples]
            ranked = " (ranked: the top of the list, rank 1 first)" if examples and "rank" in examples[0] else ""
            out.append(f"<h4>{e(name)}: {e(code)}{ranked}</h4>" + table(["record", "reason", "record text"], ex_rows))
    split = s.get("split")
    if isinstance(split, dict):
        out.append("<h3>Split</h3>" + f"<pre>{e(json.dumps(split, indent=1))}</pre>")
    return "".join(out)


def _lr_sweep(s: dict[str, Any]) -> str:
    out = [image(_plots.lr_sweep_plot(s), "learning-rate sweep")]
    rec = s.get("recommended") or {}
    out.append(f"<p>Best rate {num(s.get('best_lr'))}; range recommended for the search: [{num(rec.get('low'))}, {num(rec.get('high'))}] "
               f"({e(s.get('method'))}, {num(s.get('steps'))} steps per rate).</p>")  # fmt: skip
    if s.get("train_lr") is not None:
        why = f": {e(s['train_lr_note'])}" if s.get("train_lr_note") else " (the best rate)"
        out.append(f"<p>Rate for the {num(s.get('horizon'))}-step training: {num(s.get('train_lr'))}{why}.</p>")
    if s.get("warning"):
        out.append(f"<p>⚠ {e(s['warning'])}</p>")
    rows = [[num(p.get("lr")), num(p.get("val_loss")), num(p.get("train_loss")), e(p.get("status"))] for p in s.get("points") or []]
    out.append(table(["lr", "val loss", "train loss", "status"], rows))
    return "".join(out)


def _curation_ab(s: dict[str, Any]) -> str:
    arms = s.get("arms") or {}
    rows = [[e(name), num(a.get("train_records")), num(a.get("steps")), num(a.get("val_loss"))] for name, a in arms.items()]
    out = [f"<p>Curated against raw training data: {num(s.get('steps'))} steps each at lr {num(s.get('lr'))} "
           f"({e(s.get('lr_source'))}), the same seed, scored on the same {num(s.get('val_records'))} validation records "
           "(from the kept data).</p>", table(["arm", "training records", "steps", "validation loss"], rows)]  # fmt: skip
    ci, conf = s.get("ci") or [None, None], s.get("confidence", 0.95)
    level = f"{round(100 * conf)}%" if isinstance(conf, (int, float)) else str(conf)
    out.append(f"<p>Difference (curated - raw): <strong>{signed(s.get('difference'))}</strong>, {level} CI "
               f"[{signed(ci[0])}, {signed(ci[1])}] (paired bootstrap), noise ±{num(s.get('noise'), 3)}.</p>")  # fmt: skip
    cls = "high" if s.get("decision") == "revert" else ""
    what = "curation reverted: the search and the final training use the raw data" if s.get("decision") == "revert" else "curation kept"
    out.append(f'<p class="{cls}">Decision: <strong>{e(what)}</strong>. {e(s.get("why"))}</p>')
    excluded = (s.get("excluded") or {}).get("counts") or {}
    added = f"{num(s.get('added_to_raw'))} of the {num(s.get('removed'))} removed rows trained in the raw arm"
    out.append(f"<p>{added}" + ("; never trained: " + "; ".join(f"{e(k)}: {num(v)}" for k, v in excluded.items()) if excluded else "")
               + ".</p>")  # fmt: skip
    return "".join(out)


def _augment(s: dict[str, Any]) -> str:
    out = [f"<p>Each augmentation method against none: {num(s.get('steps'))} steps each at lr {num(s.get('lr'))} "
           f"({e(s.get('lr_source'))}), the same seed, scored on the same {num(s.get('val_records'))} validation records, "
           "which are never augmented. A method is kept only when it lowers the validation loss beyond noise, with "
           "two seeds.</p>"]  # fmt: skip
    rows = []
    for m, r in (s.get("methods") or {}).items():
        loss, ci = r.get("val_loss") or {}, r.get("ci") or [None, None]
        rows.append([e(m), f"{num(r.get('added'))} from {num(r.get('sources'))}", num(loss.get(m)), num(loss.get("plain")),
                     f"{signed(r.get('difference'))} [{signed(ci[0])}, {signed(ci[1])}]" if r.get("ci") else "",
                     e(r.get("decision") or "not tested"), e(r.get("why"))])  # fmt: skip
    out.append(table(["method", "records added", "val loss", "plain val loss", "difference (method - plain), CI",
                      "decision", "why"], rows))  # fmt: skip
    used = s.get("used")
    out.append(f"<p>Decision: <strong>{e(f'{used} is used' if used else 'no augmentation')}</strong>. {e(s.get('why'))}</p>")
    out.append(f"<p>Training data: {num(s.get('base_records'))} records" + (f" + {num(s.get('added'))} augmented ({e(used)}), "
               "each with the id of its source record (augmented_from)" if used else "") + ".</p>")  # fmt: skip
    return "".join(out)


def _search(s: dict[str, Any]) -> str:
    states = ", ".join(f"{e(k)}: {num(v)}" for k, v in (s.get("states") or {}).items())
    out = [f"<p>Study {e(s.get('study'))}: {num(s.get('n_trials'))} trials ({states}).</p>"]
    best = s.get("best")
    if best:
        out.append(f"<p>Best trial {num(best.get('number'))}: objective {num(best.get('value'))} with "
                   f"<code>{e(json.dumps(best.get('params'), sort_keys=True))}</code></p>")  # fmt: skip
    out.append("<h3>Trial history</h3>" + image(_plots.trial_history_plot(s), "trial history"))
    pruned = s.get("pruned") or []
    if pruned:
        rows = [[num(t.get("number")), num((t.get("curve") or [[None]])[-1][0]), e(json.dumps(t.get("params"), sort_keys=True))] for t in pruned]
        out.append("<h3>Pruned trials</h3>" + table(["trial", "cut at step", "params"], rows))
    else:
        out.append("<h3>Pruned trials</h3><p>none</p>")
    out.append("<h3>Parameter importances</h3>" + image(_plots.importances_plot(s), "parameter importances"))
    if s.get("importances_note"):
        out.append(f"<p>{e(s['importances_note'])}</p>")
    return "".join(out)


def _training(s: dict[str, Any]) -> str:
    out = [image(_plots.training_plot(s), "training curves")]
    stop = "stopped early" if s.get("stopped_early") else "ran to its step budget"
    monitor = str(s.get("monitor") or "val_loss")
    by = "lowest validation loss" if monitor == "val_loss" else \
        f"highest validation {monitor.removeprefix('val_')}, ties broken by the lower cross-entropy per record"
    out.append(f"<p>{num(s.get('global_step'))} steps, {stop}; best step {num(s.get('best_step'))}, chosen by "
               f"{e(by)} (best metrics {e(json.dumps(s.get('best_metrics')))}).</p>")  # fmt: skip
    if s.get("overfitting"):
        out.append(f"<p class=\"high\">Overfitting guard fired at step {num(s.get('guard_step'))}: {e(s.get('guard_reason'))}</p>")
    else:
        out.append("<p>Overfitting guard: did not fire.</p>")
    out.append(kv_table(s.get("data") or {}))
    return "".join(out)


def _record_cells(row: dict[str, Any]) -> list[str]:
    inp = row.get("prompt", row.get("text"))
    ref = row.get("completion", row.get("label"))
    gen = row.get("generation", row.get("predicted"))
    gen_text = "\n".join(f"{k}: {v}" for k, v in gen.items()) if isinstance(gen, dict) else gen
    return [e(row.get("id")), f'<div class="rec">{e(inp)}</div>', f'<div class="rec">{e(ref)}</div>',
            f'<div class="rec">{e(gen_text)}</div>', signed(row.get("gain"))]  # fmt: skip


def _references(refs: dict[str, Any], level: str) -> str:
    """Every reference the tuned model was compared with; a gating one it does not beat blocks shipping."""
    rows = []
    for name, r in refs.items():
        d = r.get("delta") or {}
        rows.append([e(name), e(r.get("description")), num(r.get("score")), signed(d.get("value")),
                     f"[{signed(d.get('ci_low'))}, {signed(d.get('ci_high'))}]", e(r.get("verdict")),
                     "yes" if r.get("gating") else "no (informative)"])  # fmt: skip
    if not rows:
        return ""
    return "<h3>References</h3>" + table(["reference", "what", "score", "tuned − reference", f"{level} CI", "verdict", "gating"], rows)


def _evaluation(s: dict[str, Any]) -> str:
    d = s.get("delta") or {}
    out = [f"<p>{num(s.get('n_records'))} test records; primary metric <strong>{e(s.get('metric'))}</strong> "
           f"({'higher' if s.get('higher_is_better') else 'lower'} is better); reference: {e(s.get('reference'))}.</p>"]  # fmt: skip
    metrics = s.get("metrics") or {}
    base, tuned = metrics.get("base") or {}, metrics.get("tuned") or {}
    rows = []
    for m in dict.fromkeys([*base, *tuned]):
        b, t = base.get(m), tuned.get(m)
        diff = t - b if isinstance(b, (int, float)) and isinstance(t, (int, float)) else None
        ci = f"[{signed(d.get('ci_low'))}, {signed(d.get('ci_high'))}]" if m == d.get("metric") else "–"
        rows.append([e(m) + (" (primary)" if m == d.get("metric") else ""), num(b), num(t), signed(diff), ci])
    conf = d.get("confidence", 0.95)
    level = f"{round(100 * conf)}%" if isinstance(conf, (int, float)) else str(conf)
    out.append(table(["metric", "reference", "tuned", "difference", f"{level} CI (paired bootstrap)"], rows))
    out.append(f"<p>verdict: <strong>{e(s.get('verdict'))}</strong> — {e(s.get('verdict_reason'))}</p>")
    out.append(_references(s.get("references") or {}, level))
    head = ["record", "input", "expected", "outputs", "gain"]
    for key, title in (("wins", "Largest wins"), ("losses", "Largest losses")):
        rows = [_record_cells(r) for r in s.get(key) or []]
        out.append(f"<h3>{title}</h3>" + (table(head, rows) if rows else f"<p>none among {num(s.get('records_with_gain'))} records</p>"))
    return "".join(out)


def _data_value(s: dict[str, Any]) -> str:
    plan, base, fit, rec = s.get("plan") or {}, s.get("base") or {}, s.get("fit") or {}, s.get("recommendation") or {}
    conf = s.get("confidence", 0.95)
    level = f"{round(100 * conf)}%" if isinstance(conf, (int, float)) else str(conf)
    out = [image(_plots.data_value_plot(s), "learning curve"),
           f"<p>{num(len(plan.get('points') or []) * (plan.get('seeds') or 0))} short trainings over {num(s.get('n_train'))} "
           f"training records at lr {num(s.get('lr'))} ({e(s.get('lr_source'))}), {num(plan.get('seeds'))} seeds each, "
           f"{num(plan.get('total_steps'))} steps in all, {_times(plan)} the final training's {num(plan.get('final_steps'))} steps "
           f"(budget {num(plan.get('budget'))}x); scored on {num(s.get('n_val'))} validation records. Reference loss "
           f"{num(base.get('val_loss'))} ({e(base.get('source'))}). Ranked subsets: {e((s.get('ranking') or {}).get('rule'))}.</p>"]  # fmt: skip
    if plan.get("over_budget"):
        out.append(f"<p>⚠ {e(plan['over_budget'])}</p>")
    rows = []
    for r in s.get("rows") or []:
        if "full" in r:
            rows.append([num(r.get("fraction")), num(r.get("records")), _loss_cell(r["full"]), "(full data)", "–", "–", "–"])
            continue
        d = r.get("ranked_minus_random") or {}
        share = lambda a: num(((r.get(a) or {}).get("share_of_gain") or {}).get("value"), 3)  # noqa: E731
        ci = d.get("ci") or [None, None]
        rows.append([num(r.get("fraction")), num(r.get("records")), _loss_cell(r.get("ranked")), _loss_cell(r.get("random")),
                     f"{signed(d.get('value'))} [{signed(ci[0])}, {signed(ci[1])}]",
                     e(d.get("verdict")), f"{share('ranked')} / {share('random')}"])  # fmt: skip
    out.append(table(["fraction", "records", "ranked loss", "random loss", f"ranked − random ({level} CI)", "verdict",
                      "share of the full-data gain (ranked / random)"], rows))  # fmt: skip
    if fit.get("status") == "ok":
        sl, g, h = fit.get("slope_at_full") or {}, fit.get("gain_at_2x") or {}, fit.get("data_to_halve_gap") or {}
        out.append(f"<p>Fit on the random subsets: L(n) = {num(fit.get('a'))} + {num(fit.get('b'))} (n/N)^-{num(fit.get('c'))} "
                   f"(rmse {num(fit.get('rmse'), 3)}). Slope at 100%, dL/d ln n: <strong>{signed(sl.get('value'))}</strong> "
                   f"{_ci_text(sl)}; twice the data is predicted to lower the validation loss by <strong>{num(g.get('value'), 3)}"
                   f"</strong> {_ci_text(g)}; closing half the remaining gap to the asymptote takes {num(h.get('value'), 3)}x the "
                   f"data {_ci_text(h)}.</p>")  # fmt: skip
    else:
        out.append(f"<p>Curve: {e(fit.get('status'))}.</p>")
    advice = f" Advice: <code>{e(rec['advice'])}</code>." if rec.get("advice") else ""
    frac = f" {num(rec['fraction'])}" if rec.get("fraction") is not None else ""
    out.append(f"<p>Recommendation: <strong>{e(rec.get('selection'))}{frac}</strong>: {e(rec.get('why'))}.{advice}</p>")
    return "".join(out)


def _times(plan: dict[str, Any]) -> str:
    total, final = plan.get("total_steps"), plan.get("final_steps")
    return e(f"{total / final:.2g}x") if isinstance(total, (int, float)) and isinstance(final, (int, float)) and final else "?x"


def _loss_cell(arm: dict[str, Any] | None) -> str:
    """The arm's validation loss, and its accuracy where it was measured (classification)."""
    arm = arm or {}
    acc = f" (accuracy {num(arm['accuracy'], 3)})" if isinstance(arm.get("accuracy"), (int, float)) else ""
    return num(arm.get("val_loss")) + acc


def _ci_text(x: dict[str, Any]) -> str:
    ci = x.get("ci")
    return f"(CI [{num(ci[0], 3)}, {num(ci[1], 3)}])" if ci else "(no interval)"


def _forgetting(s: dict[str, Any]) -> str:
    items = {k: v for k, v in s.items() if k not in ("status", "title")}
    flagged = s.get("flagged")
    verdict = "<p class=\"high\">FLAGGED: the tuned model forgot general text.</p>" if flagged else "<p>Not flagged.</p>"
    return verdict + kv_table({k: v for k, v in items.items() if not isinstance(v, (dict, list))})


def _reproducibility(s: dict[str, Any]) -> str:
    out = []
    if s.get("stages"):
        rows = [[e(x.get("name")), e(x.get("status")), num(x.get("seconds")), e(x.get("input_hash")), e(x.get("config_hash")), e(x.get("note"))] for x in s["stages"]]
        out.append("<h3>Stages</h3>" + table(["stage", "status", "seconds", "input hash", "config hash", "note"], rows))
    if s.get("mlflow_parent_run_id"):
        out.append(f"<p>MLflow parent run: <code>{e(s['mlflow_parent_run_id'])}</code></p>")
    out.append("<h3>Config</h3>" + (f"<pre>{e(s['config'])}</pre>" if s.get("config") else f'<p class="notrun">{e(s.get("config_note"))}</p>'))
    out.append(f"<h3>Package versions</h3><p>{e(s.get('versions_source'))}</p>")
    out.append(table(["package", "version"], [[e(k), e(v)] for k, v in (s.get("versions") or {}).items()]))
    hashes = s.get("data_hashes") or {}
    out.append("<h3>Data hashes (sha256)</h3>" + (table(["file", "sha256"], [[e(k), f"<code>{e(v)}</code>"] for k, v in hashes.items()]) if hashes else "<p>none recorded</p>"))
    return "".join(out)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "verdict": _verdict,
    "preflight": _preflight,
    "audit": _audit,
    "lr-sweep": _lr_sweep,
    "curation-ab": _curation_ab,
    "augment": _augment,
    "search": _search,
    "training": _training,
    "evaluation": _evaluation,
    "data-value": _data_value,
    "forgetting": _forgetting,
    "reproducibility": _reproducibility,
}


def render(facts: dict[str, Any]) -> str:
    parts = []
    nav = []
    for sid, sec in facts["sections"].items():
        nav.append(f'<a href="#{sid}">{e(sec["title"])}</a>')
        if sec.get("status") == "not run":
            body = f'<p class="notrun">not run: {e(sec.get("reason"))}</p>'
        else:
            body = RENDERERS[sid](sec)
        parts.append(f'<section id="{sid}" data-status="{e(sec.get("status"))}"><h2>{e(sec["title"])}</h2>{body}</section>')
    problems = "".join(f"<li>{e(p)}</li>" for p in facts.get("problems") or [])
    problems_html = f'<section id="problems"><h2>Problems reading the run</h2><ul>{problems}</ul></section>' if problems else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>tuneproof report: {e(facts['name'])}</title><style>{CSS}</style></head><body>"
        f"<h1>tuneproof report: {e(facts['name'])}</h1><p>run directory <code>{e(facts['run_dir'])}</code></p>"
        f"<nav>{' · '.join(nav)}</nav>{''.join(parts)}{problems_html}</body></html>\n"
    )
