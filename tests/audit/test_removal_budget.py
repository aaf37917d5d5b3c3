"""The removal budget: a check that would remove a large share of the rows is flagged and kept instead."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.audit.conftest import write_jsonl
from tuneproof.audit import audit, curate
from tuneproof.audit._budget import OVER_BUDGET, WITHIN_BUDGET, apply_budget
from tuneproof.audit.embed import HashingEmbedder
from tuneproof.cli import app
from tuneproof.config import AuditConfig

VOCAB = ("bond stock fund rate yield share price market index loan credit bank fee tax income saving budget "
         "dividend equity asset risk return account interest pension cash debt mortgage invest broker trade").split()  # fmt: skip


def _clean(n: int, seed: int = 0) -> list[dict]:
    """Distinct finance questions and answers: no check fires on them (random words, no shared phrases)."""
    rng = random.Random(seed)
    return [{"prompt": "Why does the " + " ".join(rng.sample(VOCAB, 5)) + " matter?",
             "completion": "Because the " + " ".join(rng.sample(VOCAB, 6)) + " changes over time."} for _ in range(n)]  # fmt: skip


def _garbled(n: int, seed: int = 1) -> list[dict]:
    """Completions of symbol soup: low_quality finds them severe (removed for SFT)."""
    rng = random.Random(seed)
    soup = lambda: " ".join(rng.choice("xqzkj") + "".join(rng.choices("#@%$!&*", k=4)) for _ in range(8))  # noqa: E731
    return [{"prompt": f"Item {i} of the list", "completion": soup()} for i in range(n)]


def _lines(path) -> int:
    return len(path.read_text().splitlines())


CHECKS = ["exact_duplicate", "near_duplicate", "low_quality", "off_domain"]


@pytest.fixture
def refs(tmp_path):
    return write_jsonl(tmp_path / "refs.jsonl", [{"text": f"{r['prompt']} {r['completion']}"} for r in _clean(10, seed=7)])


def _curate(tmp_path, rows, refs=None, name="out", **cfg):
    data = write_jsonl(tmp_path / "data.jsonl", [*rows, "{broken json"])
    config = AuditConfig(checks=CHECKS if refs else CHECKS[:3], **cfg)
    res = curate(data, out=tmp_path / name, domain=refs, config=config, embedder=HashingEmbedder(), progress=False)
    return data, res


def test_a_check_over_its_limit_is_flagged_and_kept_and_recorded(tmp_path, refs):
    # A threshold that fits nothing (as a fixed cosine for a domain sentence can): off_domain flags every row.
    data, res = _curate(tmp_path, _clean(40) + _garbled(4), refs, off_domain_threshold=0.99)
    out, m = tmp_path / "out", res.manifest
    b = m["budget"]
    assert b["suspended"] == ["off_domain"] and b["rows"] == 44
    od = b["checks"]["off_domain"]
    assert od["would_remove"] == 44 and od["share"] == 1.0 and od["limit"] == 0.2 and od["verdict"] == OVER_BUDGET
    assert od["flagged_and_kept"] == 40  # the garbled rows stay removed by low_quality, within its budget
    assert "per-check limit 20%" in od["why"]
    ids = {f"data.jsonl:{i}" for i in range(1, 45)}
    assert len(od["examples"]) == 3 and all(x["id"] in ids and x["text"] for x in od["examples"])
    assert b["checks"]["low_quality"]["verdict"] == WITHIN_BUDGET and b["checks"]["low_quality"]["would_remove"] == 4
    c = m["counts"]
    assert c["kept"] == 40 and c["removed"] == 4 and c["removed_by_check"] == {"low_quality": 4}
    assert c["flagged_kept_by_check"]["off_domain"] == 40
    assert _lines(out / "kept.jsonl") + _lines(out / "removed.jsonl") + _lines(out / "unreadable.jsonl") == _lines(data) == 45
    assert all(r["reasons"][0]["check"] == "low_quality" for r in map(json.loads, (out / "removed.jsonl").read_text().splitlines()))
    flags = [f for fs in res.flagged.values() for f in fs if f.check == "off_domain"]
    assert len(flags) == 44 and all(f.reason.startswith("over the removal budget") for f in flags)
    assert json.loads((out / "manifest.json").read_text())["budget"] == b
    assert ("off_domain", "flag: over budget") in [r[:2] for r in res.dry_run_rows()]


def test_a_config_can_allow_more_and_1_turns_the_budget_off(tmp_path, refs):
    rows = _clean(40)
    _, off = _curate(tmp_path, rows, refs, "off", off_domain_threshold=0.99, max_check_removed_share=1.0, max_removed_share=1.0)
    assert off.manifest["budget"]["suspended"] == [] and off.manifest["counts"]["removed_by_check"] == {"off_domain": 40}
    assert off.manifest["budget"]["checks"]["off_domain"]["verdict"] == WITHIN_BUDGET
    # Raising the per-check limit alone leaves the total limit (0.4) in force.
    _, per = _curate(tmp_path, rows, refs, "per", off_domain_threshold=0.99, max_check_removed_share=1.0)
    assert per.manifest["budget"]["suspended"] == ["off_domain"] and per.manifest["counts"]["removed"] == 0
    assert "total limit 40%" in per.manifest["budget"]["checks"]["off_domain"]["why"]
    assert per.manifest["budget"]["total"]["verdict"] == f"{OVER_BUDGET} (off_domain)"


@pytest.mark.parametrize("field", ["max_check_removed_share", "max_removed_share"])
@pytest.mark.parametrize("value", [0, -0.1, 1.5])
def test_the_limits_are_shares_in_0_1(field, value):
    with pytest.raises(ValidationError, match=field):
        AuditConfig(**{field: value})


def test_exact_duplicates_are_removed_whatever_their_share(tmp_path):
    rows = _clean(28)
    data, res = _curate(tmp_path, rows + rows[:12])  # 12 of 40 rows (30%) are copies of kept rows
    b = res.manifest["budget"]
    assert b["suspended"] == [] and b["checks"]["exact_duplicate"]["share"] == 0.3
    assert b["checks"]["exact_duplicate"]["verdict"].startswith("exempt: each removed row is an identical copy")
    assert b["total"]["share"] == 0.0  # copies lose no content, so they do not count towards the total either
    assert res.manifest["counts"]["removed_by_check"] == {"exact_duplicate": 12} and res.manifest["counts"]["kept"] == 28


def test_over_the_total_the_check_least_explained_by_its_calibration_is_suspended_first(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", _clean(20))
    result = audit(data, config=AuditConfig(checks=["exact_duplicate"]), progress=False)
    reason = lambda check: {"check": check, "code": "c", "reason": f"{check} says so"}  # noqa: E731
    removed = {i: [reason("near_duplicate")] for i in range(5)}
    removed[4].append(reason("exact_duplicate"))  # also a copy: goes anyway, so not in near_duplicate's share (4 rows, 20%)
    removed |= {i: [reason("low_quality")] for i in (5, 6, 7)}  # 15%
    removed |= {i: [reason("off_domain")] for i in (8, 9, 10, 11)}  # 20%, of which its calibration expects 10%
    removed[12] = [reason("too_long")]  # 5%
    flagged: dict = {}
    # Together 12 of 20 rows outside the exempt copy (60%), 50% beyond the 10% expected: over 40%.
    b = apply_budget(result, removed, flagged, expected={"off_domain": 0.1})
    assert b["suspended"] == ["near_duplicate"]  # 20% beyond its expected 0%: the largest excess
    nd = b["checks"]["near_duplicate"]
    assert (nd["would_remove"], nd["also_removed_as_exempt"], nd["share"], nd["flagged_and_kept"]) == (4, 1, 0.2, 4)
    assert sorted(removed) == list(range(4, 13)) and removed[4] == [reason("exact_duplicate")]
    assert sorted(flagged) == [0, 1, 2, 3, 4]
    assert flagged[0][0].reason == "over the removal budget, flagged and kept: near_duplicate says so"
    assert b["flagged_and_kept"] == 4
    assert b["total"]["share"] == 0.6 and b["total"]["share_after"] == 0.4 and b["total"]["expected_share"] == 0.1
    assert b["checks"]["off_domain"]["verdict"] == WITHIN_BUDGET and b["checks"]["off_domain"]["expected_share"] == 0.1
    assert "total limit 40%" in b["checks"]["near_duplicate"]["why"]


def test_expected_shares_come_from_the_checks_calibration(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", _clean(10))
    result = audit(data, config=AuditConfig(checks=["exact_duplicate"]), progress=False)
    result.context.extras["calibration"] = {"off_domain": {"expected_false_positive_rate": 0.25}}
    removed = {i: [{"check": "off_domain", "code": "c", "reason": "r"}] for i in range(4)}  # 40%: 15% beyond 25%
    b = apply_budget(result, removed, {})
    assert b["suspended"] == [] and b["checks"]["off_domain"]["expected_share"] == 0.25 and len(removed) == 4


def test_cli_curate_prints_the_shares_and_the_verdict(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", _clean(30) + _garbled(10))  # low_quality: 10 of 40 rows
    out = CliRunner().invoke(app, ["curate", str(data), "--out", str(tmp_path / "o"),
                                   "--set", "audit.checks=[exact_duplicate,low_quality]"], env={"COLUMNS": "200"})  # fmt: skip
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    # The table folds at 80 columns (no terminal under xdist): check its cells, not its layout.
    assert "removal budget (40 readable rows)" in text and "low_quality │ 10 │ 25% │ 0% │ 20% │ over budget:" in text
    assert "10 rows flagged and kept" in text and "data.jsonl:31" in text
    assert "input 40 rows = kept 40 + removed 0 + unreadable 0" in text
