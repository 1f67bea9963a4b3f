"""AppTest and jobs: a page submits its work and returns at once (a browser's fragment
polls and reruns it when a job ends); a test reruns it itself, with `settle`."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from core.jobs import Handle, executor, trainer


def unfinished() -> list[Handle]:
    """Every job of this process's executor and trainer that is queued or running."""
    return [h for e in (executor(), trainer()) for h in e.running() + e.queued()]


def settle(page, timeout_s: float = 600.0) -> AppTest:
    """Run the page (an AppTest, or a widget given a new value), then wait for its jobs
    and rerun it until it shows no progress bar: what the browser's polling does. A map's
    AUCs start only once the map is done, hence the loop."""
    at = page.run()
    deadline = time.monotonic() + timeout_s
    while unfinished() or at.get("progress"):
        for handle in unfinished():
            if not handle.wait(max(deadline - time.monotonic(), 0.0)):
                raise TimeoutError(f"{handle.spec.title} still {handle.state} "
                                   f"after {timeout_s:.0f} s")
        at.run()
        assert not at.exception, at.exception
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page still shows progress after {timeout_s:.0f} s")
    return at


def running(kind: str, **params) -> list[Handle]:
    """The running jobs of `kind` whose params include `params`."""
    return [h for h in executor().running() if h.spec.kind == kind
            and all(h.spec.params.get(k) == v for k, v in params.items())]


def spy_on_submit(monkeypatch) -> list[Handle]:
    """Every handle the pages get from the executor's `submit` from now on, in order (the
    same object each time for the same spec, unless the work was started afresh)."""
    pool, got = executor(), []
    real = pool.submit

    def spy(job):
        handle = real(job)
        got.append(handle)
        return handle

    monkeypatch.setattr(pool, "submit", spy)
    return got
