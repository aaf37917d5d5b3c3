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
            "build_report",
            "curate",
            "evaluate",
            "load_config",
            "load_model",
            "load_records",
            "lr_sweep",
            "run",
            "train",
            "tune",
        ]
    )
    for name in tuneproof.__all__:
        assert getattr(tuneproof, name) is not None


def test_functions_named_like_their_subpackages_stay_functions():
    import inspect

    import tuneproof.audit._audit  # noqa: F401  (importing submodules must not rebind the names)
    import tuneproof.evaluate._api  # noqa: F401
    import tuneproof.train._engine  # noqa: F401
    from tuneproof.train import TrainResult, split_records

    for fn in (tuneproof.audit, tuneproof.curate, tuneproof.evaluate, tuneproof.train):
        assert inspect.isfunction(fn), fn
    assert TrainResult is not None and split_records is not None


def test_search_functions_are_the_search_packages():
    from tuneproof.search import lr_sweep, tune

    assert tuneproof.lr_sweep is lr_sweep and tuneproof.tune is tune


def test_importing_tuneproof_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, tuneproof; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_evaluate_is_the_function_even_after_importing_its_package():
    import tuneproof.evaluate._sft  # noqa: F401  (a submodule import must not rebind the name)
    from tuneproof.evaluate import EvalResult, evaluate

    assert tuneproof.evaluate is evaluate and callable(tuneproof.evaluate)
    assert EvalResult.__name__ == "EvalResult"
