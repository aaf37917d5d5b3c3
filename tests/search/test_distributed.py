"""Under torchrun, every rank of a trial trains with the same hyperparameters (transformers#18609)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tuneproof

pytestmark = pytest.mark.slow


def test_all_ranks_of_a_trial_use_rank0s_params(tmp_path, search_config):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    cfg = search_config(search={"pruner": "none"})
    path = tmp_path / "tuneproof.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(Path(tuneproof.__file__).parents[1]), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    done = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29517", "-m", "tuneproof.cli", "tune", str(path), "--n-trials", "2"],
        capture_output=True, text=True, env=env, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    trials_dir = Path(cfg["tracking"]["runs_dir"]) / "t" / "tune" / "trials"
    study = json.loads((trials_dir.parent / "trials.json").read_text())["trials"]
    assert [t["state"] for t in study] == ["COMPLETE", "COMPLETE"]
    for n, trial in enumerate(study):
        rank0 = json.loads((trials_dir / f"trial-{n:04d}" / "params.json").read_text())
        rank1 = json.loads((trials_dir / f"rank1-{n:04d}" / "params.json").read_text())
        assert rank0 == rank1 == trial["params"]
    assert study[0]["params"] != study[1]["params"]
