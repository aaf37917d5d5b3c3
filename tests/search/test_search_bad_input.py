"""Bad search input fails before any trial, with a message that names the problem and the fix."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tuneproof.cli import app
from tuneproof.config import load_config
from tuneproof.errors import ConfigError, TuneproofError
from tuneproof.search import redact, tune


def _no_trial_ran(cfg):
    from pathlib import Path

    return not (Path(cfg["tracking"]["runs_dir"]) / cfg["name"] / "tune" / "trials").exists()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"lr": {"low": 1e-3, "high": 1e-4, "log": True}}, "empty or inverted range"),
        ({"lr": {"low": 1e-4, "high": 1e-4}}, "empty or inverted range"),
        ({"weight_decy": {"low": 0.0, "high": 0.1}}, "did you mean 'weight_decay'"),
        ({"weight_decay": {"low": 0.0, "high": 2.0}}, "search.space.weight_decay: the value 2.0"),
        ({"batch_size": {"choices": [4, 2.5]}}, "2.5 is not a whole number"),
    ],
)
def test_bad_space_is_refused_before_any_trial(search_config, space, message):
    cfg = search_config(search={"space": space})
    with pytest.raises(ConfigError) as err:
        tune(cfg, n_trials=2)
    assert message in str(err.value)
    assert "Fix" in str(err.value) or "did you mean" in str(err.value) or "swap" in str(err.value)
    assert _no_trial_ran(cfg)


def test_lora_params_with_another_method(search_config):
    cfg = search_config(model={"method": "full"}, search={"space": {"lora_r": {"choices": [8, 16]}}})
    with pytest.raises(ConfigError, match="only apply to model.method=lora"):
        tune(cfg, n_trials=1)


def test_n_trials_below_one(search_config):
    with pytest.raises(ConfigError, match="at least 1 trial"):
        tune(search_config(), n_trials=0)
    with pytest.raises(ConfigError, match="search.n_trials"):
        load_config(search_config(search={"n_trials": 0}))


def test_unreachable_storage_names_the_url_without_password(search_config):
    cfg = search_config()
    url = "postgresql://alice:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(TuneproofError) as err:
        tune(cfg, storage=url, n_trials=1)
    text = str(err.value)
    assert "s3cret" not in text and "alice:***@127.0.0.1:1/nowhere" in text
    assert "cannot reach the Optuna storage" in text and "Fix:" in text
    assert _no_trial_ran(cfg)


def test_redact_hides_only_the_password():
    assert redact("postgresql+psycopg://u:pw@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_cli_reports_bad_input_without_traceback(search_config, tmp_path):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(search_config()))
    runner = CliRunner()
    result = runner.invoke(app, ["tune", str(path), "--storage", "postgresql://u:pw@127.0.0.1:1/x"])
    assert result.exit_code == 1 and "cannot reach" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["lr-sweep", str(path), "--lrs", "1e-4,abc"])
    assert result.exit_code == 1 and "--lrs" in result.output
    result = runner.invoke(app, ["tune", str(path), "--n-trials", "0"])
    assert result.exit_code == 1 and "at least 1 trial" in result.output


@pytest.mark.parametrize(("ci", "rc", "expect"), [("1", 1, "CI is set but TUNEPROOF_TEST_POSTGRES_URL is not"), ("", 0, "skipped")])
def test_postgres_tests_fail_under_ci_without_a_server(ci, rc, expect):
    """CI must not skip the distributed tests silently; a laptop without PostgreSQL may."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import tuneproof

    env = {k: v for k, v in os.environ.items() if k not in ("TUNEPROOF_TEST_POSTGRES_URL", "CI")}
    path = [str(Path(tuneproof.__file__).parents[1]), *filter(None, [env.get("PYTHONPATH")])]  # keep the caller's
    env.update(PYTHONPATH=os.pathsep.join(path), **({"CI": ci} if ci else {}))
    here = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "slow", "-p", "no:cacheprovider", "-rs", "-k", "share_one_study",
         str(here / "test_postgres.py")],
        capture_output=True, text=True, env=env, cwd=here.parents[1], timeout=120,
    )  # fmt: skip
    assert done.returncode == rc, done.stdout[-2000:]
    assert expect in done.stdout
