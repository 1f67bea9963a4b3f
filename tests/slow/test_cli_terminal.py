"""`medlens` on a real pseudo-terminal with the real models: long work shows one progress
line on stderr, redrawn in place and cleared, while the result still goes to stdout; and
Ctrl-C exits 130 at once, even in a step that reports no progress."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.cli import MEDLENS
from tests.conftest import dicom_file


def as_from_a_shell() -> None:
    """In the child before exec: SIGINT delivered and at its default, as a shell starts a
    command. Dispositions set to ignore and blocked signals are inherited across exec, and
    a long pytest worker (TensorFlow, Chromium and Streamlit threads in it) was seen in CI
    to pass SIGINT on blocked or ignored: then Ctrl-C never reached `medlens` at all."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def on_a_terminal(tmp_path: Path, *args: str, interrupt_on: str | None = None,
                  timeout: float = 600) -> tuple[int, str, str, float | None]:
    """Run `medlens args` with a pseudo-terminal as its stderr (stdout to a file): its exit
    status, stdout, what reached the terminal, and, with `interrupt_on`, the seconds from
    the SIGINT sent when that text first reached the terminal to the process's exit."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
    stdout = tmp_path / "stdout"
    with open(stdout, "w") as out:
        child = subprocess.Popen([MEDLENS, *args], stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=slave, preexec_fn=as_from_a_shell)
    os.close(slave)
    written, asked = b"", None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every slave side is closed, the child is gone
                    break
                if not chunk:
                    break
                written += chunk
            if (interrupt_on is not None and asked is None
                    and interrupt_on in written.decode(errors="replace")):
                child.send_signal(signal.SIGINT)
                asked = time.monotonic()
                # Past this, the process missed the interrupt: fail now, not in 10 minutes.
                deadline = min(deadline, asked + 30)
        code = child.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if child.poll() is None:
            child.kill()
        os.close(master)
    took = None if asked is None else time.monotonic() - asked
    return code, stdout.read_text(), written.decode(errors="replace"), took


def visible(written: str) -> str:
    """What the terminal line shows at the end: the text after the last carriage return."""
    return written.rsplit("\r", 1)[-1]


def test_evaluate_shows_progress_on_the_terminal_and_its_result_on_stdout(tmp_path):
    code, out, written, _ = on_a_terminal(tmp_path, "evaluate", "--model",
                                          "braintumor-xception", "--samples", "--json")
    assert code == 0, written
    result = json.loads(out)
    assert result["model"] == "braintumor-xception" and result["n"] == 17
    lines = [line.rstrip() for line in written.split("\r") if line.strip()]
    assert "evaluate 94% (braintumor-xception: 16 of 17 images)" in lines, lines
    assert all(re.fullmatch(r"evaluate \d+% \(.+\)", line) for line in lines), lines
    # One line, redrawn in place, and cleared before the result.
    assert "\n" not in written and visible(written) == ""


def test_ctrl_c_during_rise_exits_130_at_once_and_writes_nothing(tmp_path):
    maps = tmp_path / "maps"
    code, out, written, took = on_a_terminal(
        tmp_path, "explain", "--model", "braintumor-xception", "--method", "rise", "--option",
        "samples=20000", str(dicom_file("CT_small.dcm")), "--out", str(maps),
        interrupt_on="% (RISE: ")
    assert took is not None, written  # the progress line was seen on the terminal
    assert re.search(r"\rexplain: rise \d+% \(RISE: \d+ of 20000 masks\)", written), written
    assert code == 130 and took < 5, (code, took)
    assert out == "" and visible(written) == "" and not maps.exists()


def test_ctrl_c_in_a_sanity_step_that_reports_nothing_still_exits_at_once(tmp_path):
    """The sanity check's first step is a whole RISE map with no report in it: the
    cancelled job cannot stop there (measured: 56 s more at 400 masks if the process
    waited for it), so the process leaves without waiting for it."""
    samples = 100
    code, out, written, took = on_a_terminal(
        tmp_path, "explain", "--model", "braintumor-xception", "--method", "rise", "--option",
        f"samples={samples}", "--sanity-check", str(dicom_file("CT_small.dcm")), "--out",
        str(tmp_path / "maps"), interrupt_on="Sanity check: copying the model")
    assert took is not None, written
    # The map alone took seconds to draw (its own progress lines are on the terminal).
    assert f"(RISE: {samples} of {samples} masks)" in written
    assert code == 130 and took < 3, (code, took)
    assert out == "" and visible(written) == ""
