"""Test harness only (on PYTHONPATH of the suite's child processes): lifts the legal calling
hours floor in a `dialer` child process when the suite asks (`DIALER_TESTS_LIFT_LEGAL_FLOOR`),
as `tests/conftest.py` does in-process.

The suite's runs call the fake with Indian numbers at whatever hour CI runs; the floor would
hold them back for twelve hours a day. Tests of the floor itself (marked `legal_floor`) keep
it and inject their clock.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

_MODULE = "dialer.core.legal_floor"


class _LiftFloor(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):  # type: ignore[no-untyped-def]
            run(module)
            module.FLOOR.clear()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if os.environ.get("DIALER_TESTS_LIFT_LEGAL_FLOOR") == "1":
    sys.meta_path.insert(0, _LiftFloor())
