"""`medlens` for the tests. `medlens` runs the command in this process, so every test
shares the models already loaded (a fresh process spends 5-10 s importing TensorFlow and
loading its model); `medlens_process` runs the installed entry point, for the tests
whose subject is the process itself (its exit status, what reaches its stderr)."""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from core.cli import main

MEDLENS = str(Path(sys.executable).parent / "medlens")


@dataclass(frozen=True)
class Run:
    """What a `medlens` run gave, shaped as `subprocess.CompletedProcess`."""

    returncode: int
    stdout: str
    stderr: str


def medlens(*args: str) -> Run:
    """`medlens args` in this process: its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return Run(code, out.getvalue(), err.getvalue())


def medlens_process(*args: str) -> subprocess.CompletedProcess:
    """`medlens args` as its own process."""
    return subprocess.run([MEDLENS, *map(str, args)], capture_output=True, text=True,
                          timeout=300)
