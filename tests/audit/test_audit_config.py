from __future__ import annotations

import pytest

from tuneproof.config import AuditConfig, load_config
from tuneproof.errors import ConfigError

MINIMAL = {"name": "x", "task": "sft", "data": {"path": "train.jsonl"}}


def test_existing_configs_get_audit_defaults():
    cfg = load_config(MINIMAL)
    assert cfg.audit.decisions["near_duplicate"] == "remove" and cfg.audit.decisions["pii"] == "flag"
    assert cfg.audit.decisions["label_issue"] == "flag" and cfg.audit.checks[0] == "exact_duplicate"


def test_partial_decisions_keep_the_other_defaults():
    cfg = load_config({**MINIMAL, "audit": {"decisions": {"pii": "remove"}, "jaccard_threshold": 0.7}})
    assert cfg.audit.decisions["pii"] == "remove" and cfg.audit.decisions["off_domain"] == "remove"
    assert cfg.audit.jaccard_threshold == 0.7


def test_audit_config_errors_name_the_field_and_fix():
    with pytest.raises(ConfigError) as err:
        load_config({**MINIMAL, "audit": {"decisions": {"near_dupe": "remove"}, "bands": 5}}, ["audit.off_domain_threshold=2"])
    text = str(err.value)
    assert "near_dupe" in text and "near_duplicate" in text  # did-you-mean
    assert "audit.off_domain_threshold" in text  # every problem at once


def test_bands_must_divide_permutations():
    with pytest.raises(ValueError, match="divisible"):
        AuditConfig(num_perm=112, bands=5)
