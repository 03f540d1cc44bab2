"""Test harness only: lifts the legal calling hours floor in every `dialer` child process of
a test whose PYTHONPATH holds this folder (`tests/conftest.py` puts it there, and lifts the
floor in-process, for every test not marked `legal_floor`). PYTHONPATH, unlike a variable of
our own, reaches the page's preview children too.

The suite's runs call the fake with Indian numbers at whatever hour CI runs; the floor would
hold them back for twelve hours a day. Tests of the floor itself (marked `legal_floor`) keep
it and inject their clock.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
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


sys.meta_path.insert(0, _LiftFloor())
