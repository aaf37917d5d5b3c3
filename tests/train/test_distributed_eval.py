"""Under torchrun, the validation loss is the same mean over tokens as in one process."""

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


def test_two_ranks_report_one_process_val_loss(tiny_llama_dir, make_config, qa_rows, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "PYTHONPATH": str(Path(tuneproof.__file__).parents[1]), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    losses = {}
    for ranks in (1, 2):
        # A learning rate of 1e-12: the one step leaves the weights as they were, so both runs
        # score the same model on the same validation split (18 records, 5 batches).
        cfg = make_config(tiny_llama_dir, rows=qa_rows(60),
                          data={"val_fraction": 0.3}, train={"lr": 1e-12, "max_steps": 1, "eval_steps": 1})  # fmt: skip
        cfg["name"] = f"r{ranks}"
        path = tmp_path / f"r{ranks}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        launch = [torchrun, "--nproc_per_node", str(ranks), "--master_port", "29541"] if ranks > 1 else [sys.executable]
        done = subprocess.run([*launch, "-m", "tuneproof.cli", "train", str(path)], capture_output=True, text=True,
                              env=env, timeout=300)  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        saved = json.loads((Path(cfg["tracking"]["runs_dir"]) / cfg["name"] / "train" / "train.json").read_text())
        losses[ranks] = saved["guard"]["curve"][0]["val_loss"]
    # Trainer's default (average_tokens_across_devices) multiplied it by the rank count: 2x.
    assert losses[2] == pytest.approx(losses[1], rel=1e-4), losses
