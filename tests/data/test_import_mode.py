"""The interpreter settings of a bulk import are set while one runs and restored after."""

from __future__ import annotations

import gc
import sys
import threading

from data.incident_pipeline import GC_THRESHOLDS, SWITCH_INTERVAL_S, import_mode


def test_set_while_imports_run_and_restored_by_the_last() -> None:
    before = (sys.getswitchinterval(), gc.get_threshold())
    started, release = threading.Event(), threading.Event()

    def other_import() -> None:
        with import_mode():
            started.set()
            release.wait(10)

    with import_mode():
        assert abs(sys.getswitchinterval() - SWITCH_INTERVAL_S) < 1e-9
        assert gc.get_threshold() == GC_THRESHOLDS
        thread = threading.Thread(target=other_import)
        thread.start()
        assert started.wait(10)
    assert gc.get_threshold() == GC_THRESHOLDS  # the other import still runs
    release.set()
    thread.join(10)
    assert (sys.getswitchinterval(), gc.get_threshold()) == before


def test_restored_after_an_error() -> None:
    before = (sys.getswitchinterval(), gc.get_threshold())
    try:
        with import_mode():
            raise KeyError("x")
    except KeyError:
        pass
    assert (sys.getswitchinterval(), gc.get_threshold()) == before
