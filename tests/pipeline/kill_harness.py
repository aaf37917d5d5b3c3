"""Run `tuneproof run CONFIG` in this process and SIGKILL it at one chosen point.

Usage: python kill_harness.py CONFIG STAGE WHEN [FILE NTH]

- WHEN=write: kill as the NTH atomic write of a file named FILE while STAGE runs is about to
  rename its finished temporary file into place (inside the stage: some outputs written,
  others not, a temporary file left behind);
- WHEN=checkpoint: kill just after the first Trainer checkpoint is saved while STAGE runs
  (in the middle of a training);
- WHEN=after: kill just after STAGE's work returned, before the ledger records it.

The kill is a real SIGKILL of this process: no handler, no ``finally`` runs. The hooks wrap
``os.replace`` (the last step of tuneproof's atomic writes), the pipeline's stage list and
one Trainer method; nothing else changes.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

config, stage, when = sys.argv[1], sys.argv[2], sys.argv[3]
target, nth = (sys.argv[4], int(sys.argv[5])) if when == "write" else (None, 0)
current: list[str] = [""]
seen = [0]


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


_replace = os.replace


def killing_replace(src, dst, *args, **kwargs):
    # tuneproof's atomic writes end in os.replace(temporary, target): killed here, the
    # temporary file is complete on disk and the target not yet in place.
    if when == "write" and current[0] == stage and Path(dst).name == target:
        seen[0] += 1
        if seen[0] == nth:
            die()
    return _replace(src, dst, *args, **kwargs)


os.replace = killing_replace

from tuneproof.pipeline import _run  # noqa: E402


def wrap(st):
    work = st.work

    def run(ctx):
        current[0] = st.name
        out = work(ctx)
        if when == "after" and st.name == stage:
            die()
        return out

    st.work = run


for st in _run.STAGES + _run.ALWAYS:
    wrap(st)

if when == "checkpoint":
    from transformers import Trainer

    save = Trainer._save_checkpoint

    def killing_save(self, *args, **kwargs):
        out = save(self, *args, **kwargs)
        if current[0] == stage:
            die()
        return out

    Trainer._save_checkpoint = killing_save

from tuneproof.cli import main  # noqa: E402

sys.argv = ["tuneproof", "run", config]
main()
