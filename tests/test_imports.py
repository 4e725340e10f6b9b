"""Every public package imports on its own, first, in a fresh interpreter.

Catches import cycles that the test session's import order would hide. The
interpreters are started together so that the torch imports overlap.
"""

import subprocess
import sys

import pytest

MODULES = (
    "velora",
    "velora.callbacks",
    "velora.models",
    "velora.metrics",
    "velora.gym",
    "velora.utils",
    "velora.nn",
    "velora.training",
    "velora.buffer",
    "velora.cli",
)


@pytest.fixture(scope="module")
def import_processes(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("imports")
    processes = {
        module: subprocess.Popen(
            [sys.executable, "-c", f"import {module}; print('imported', {module}.__name__)"],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in MODULES
    }
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(import_processes, module):
    process = import_processes[module]
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert stdout.strip() == f"imported {module}"
