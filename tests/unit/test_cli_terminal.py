"""The CLI package without a model: its progress line on a real pseudo-terminal (and
nothing when stderr is not one), jobs run for the CLI on a real executor, the --method
choices read from the registry, and what `medlens studies` imports."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

from core.cli import build_parser, common, main
from core.cli.common import TerminalProgress, run_job
from core.jobs import Executor, Job
from core.progress import report
from tests.cli import MEDLENS
from tests.conftest import ROOT


class Terminal:
    """A pseudo-terminal: `stream` writes to its slave side, `read()` what came out."""

    def __init__(self, columns: int = 120) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self.stream = open(slave, "w", encoding="utf-8", closefd=True)

    def read(self) -> str:
        out = b""
        while True:
            try:
                # The line discipline hands over what is written at once; a short
                # non-blocking read loop collects it.
                os.set_blocking(self.master, False)
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            out += chunk
        return out.decode()

    def close(self) -> None:
        self.stream.close()
        os.close(self.master)


@pytest.fixture
def terminal():
    t = Terminal()
    yield t
    t.close()


def visible(written: str) -> str:
    """What the line shows at the end: the text after the last carriage return."""
    return written.rsplit("\r", 1)[-1]


def test_progress_is_one_line_redrawn_in_place_and_cleared(terminal):
    with TerminalProgress("explain: rise", terminal.stream) as line:
        assert line.active
        line(0.42, "RISE: 210 of 500 masks")
        first = terminal.read()
        line(0.42, "RISE: 210 of 500 masks")  # the same line is not redrawn
        assert terminal.read() == ""
        line(1.0, "RISE: 500")
        second = terminal.read()
    cleared = terminal.read()
    long, short = "explain: rise 42% (RISE: 210 of 500 masks)", "explain: rise 100% (RISE: 500)"
    assert first == "\r" + long
    # A shorter line covers the rest of the longer one with spaces.
    assert second == "\r" + short + " " * (len(long) - len(short))
    assert cleared == "\r" + " " * len(short) + "\r"
    assert visible(first + second + cleared) == ""
    assert "\n" not in first + second + cleared
    line(0.5, "late report from a worker")  # after the end: nothing
    assert terminal.read() == ""


def test_a_long_line_is_cut_to_the_terminal_so_it_can_be_redrawn():
    narrow = Terminal(columns=40)
    try:
        TerminalProgress("evaluate", narrow.stream)(0.5, "x" * 100)
        written = narrow.read()
    finally:
        narrow.close()
    assert written.startswith("\revaluate 50% (xxx") and len(written) == 1 + 39


def test_nothing_is_written_where_stderr_is_not_a_terminal(tmp_path):
    read, write = os.pipe()
    piped = open(write, "w")
    for stream in (io.StringIO(), piped, open(tmp_path / "log", "w")):
        with TerminalProgress("evaluate", stream) as line:
            assert not line.active
            line(0.5, "braintumor-xception: 8 of 17 images")
        stream.flush()
    piped.close()
    assert os.read(read, 100) == b""
    assert (tmp_path / "log").read_text() == ""


def _counts(job: Job, progress) -> int:
    """Counts to `steps`, reporting each step (a plain runner, as in test_jobs)."""
    steps = job.spec.params["steps"]
    for i in range(steps):
        time.sleep(0.01)
        report(progress, (i + 1) / steps, f"step {i + 1} of {steps}")
    return steps


def _refuses(job: Job, progress) -> None:
    raise ValueError("rise: samples must be at least 1")


def _interrupted_inside(job: Job, progress) -> None:
    """Ctrl-C as the kernel may deliver it: to this worker thread, not the main one; then
    a long step that reports nothing (a sanity check's RISE map)."""
    time.sleep(0.2)  # the CLI is waiting by then
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    time.sleep(job.spec.params["seconds"])


@pytest.fixture
def pool(monkeypatch):
    """The process's executor, replaced by one with plain runners."""
    import core.jobs

    executor = Executor({"counts": _counts, "refuses": _refuses,
                         "interrupted_inside": _interrupted_inside}, workers=1)
    monkeypatch.setattr(core.jobs, "executor", lambda: executor)
    yield executor
    executor.shutdown()


def test_a_job_shows_its_progress_on_a_terminal_and_returns_its_result(
        pool, terminal, monkeypatch):
    monkeypatch.setattr(sys, "stderr", terminal.stream)
    assert run_job(Job.make("counts", {"steps": 20}), "explain: rise") == 20
    written = terminal.read()
    assert "\rexplain: rise 50% (step 10 of 20)" in written
    assert visible(written) == "" and "\n" not in written


def test_a_job_writes_nothing_where_stderr_is_not_a_terminal(pool, capsys):
    assert run_job(Job.make("counts", {"steps": 5}), "explain: rise") == 5
    assert capsys.readouterr().err == ""


def test_a_job_raises_what_the_work_raised_so_the_exit_status_is_the_same(pool, terminal,
                                                                           monkeypatch):
    monkeypatch.setattr(sys, "stderr", terminal.stream)
    with pytest.raises(ValueError, match="^rise: samples must be at least 1$"):
        run_job(Job.make("refuses", {}), "explain: rise")
    assert visible(terminal.read()) == ""
    assert not common.still_working()


def test_ctrl_c_handed_to_a_worker_thread_still_stops_the_wait(pool, monkeypatch):
    monkeypatch.setattr(common, "_cancelled", [])
    # SIGINT as the `medlens` process has it: Python's handler, not blocked. A long pytest
    # worker was seen in CI with it blocked or ignored (inherited by the job's thread).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    try:
        _wait_interrupted()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _wait_interrupted() -> None:
    asked = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_job(Job.make("interrupted_inside", {"seconds": 5}), "explain: rise")
    # Not after the 5 s step: the main thread wakes up to run Python's handler.
    assert time.monotonic() - asked < 2
    assert common.still_working()  # the step has not reached a report yet


# -- the method list, and what `studies` imports ---------------------------------------

def _subparser(name: str):
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    return commands.choices[name]


@pytest.mark.parametrize("command", ["explain", "compare"])
def test_method_choices_are_the_registry(command):
    from core.explain.registry import METHOD_TITLES, METHODS

    sub = _subparser(command)
    sub.format_help()  # its arguments are added on first use
    (method,) = [a for a in sub._actions if a.dest == "method"]
    assert tuple(method.choices) == tuple(METHODS) == tuple(METHOD_TITLES)
    assert len(METHODS) >= 12


def test_every_registry_method_is_accepted_and_others_listed(capsys):
    from core.explain.registry import METHODS

    for name in METHODS:
        args = build_parser().parse_args(["explain", "--model", "m", "--method", name, "x.png",
                                          "--out", "o"])
        assert args.method == name
    assert main(["compare", "--models", "a,b", "--method", "lime", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err == ("medlens compare: argument --method: invalid choice: 'lime' (choose from "
                   + ", ".join(map(repr, METHODS)) + ")\n")


def test_studies_commands_load_neither_tensorflow_nor_the_method_registry(ct_small):
    code = ("import sys; from core.cli import main;"
            "code = main(['studies', 'info', sys.argv[1], '--json']);"
            "print(code, *(m in sys.modules for m in ('tensorflow', 'keras', 'cv2',"
            " 'core.explain', 'core.jobs', 'core.cli.explain')), file=sys.stderr)")
    run = subprocess.run([sys.executable, "-c", code, str(ct_small)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.stderr.split() == ["0"] + ["False"] * 6
    assert '"format": "DICOM"' in run.stdout


def test_studies_info_on_a_terminal_prints_only_its_result(ct_small):
    """No progress line for quick work: the pty sees nothing, stdout the result."""
    master, slave = pty.openpty()
    run = subprocess.run([MEDLENS, "studies", "info", str(ct_small)],
                         stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120)
    os.close(slave)
    os.set_blocking(master, False)
    try:
        on_terminal = os.read(master, 4096)
    except OSError:  # nothing written: EAGAIN, or EIO once the slave is closed
        on_terminal = b""
    os.close(master)
    assert run.returncode == 0 and on_terminal == b""
    assert run.stdout.startswith(f"{ct_small}: DICOM CT 128x128")
