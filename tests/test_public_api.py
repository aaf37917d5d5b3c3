"""Pin the public surface, so a change to it is a decision and not an accident."""

from __future__ import annotations

import tuneproof


def test_top_level_exports():
    assert sorted(tuneproof.__all__) == sorted(
        [
            "ConfigError",
            "DataError",
            "ModelLoadError",
            "NotImplementedYet",
            "RunConfig",
            "TuneproofError",
            "__version__",
            "audit",
            "curate",
            "load_config",
            "load_model",
            "load_records",
        ]
    )
    for name in tuneproof.__all__:
        assert getattr(tuneproof, name) is not None


def test_importing_tuneproof_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, tuneproof; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
