"""Jobs on the real models: the explain kind gives the direct call's map, a second submit
while it runs is the same handle, and RISE stops on cancel."""

from __future__ import annotations

import time

import numpy as np

from core.jobs import CANCELLED, Executor


def test_an_explain_job_gives_the_direct_map_and_rise_can_be_cancelled(xception, glioma_input):
    """The real explain kind on the real Xception: the same map as a direct call, a
    second submit while it runs is the same handle, and RISE stops on cancel."""
    from core.explain import explain_input
    from core.jobs import explain_job
    from core.jobs.kinds import RUNNERS

    pool = Executor(RUNNERS, workers=1)
    handle = pool.submit(explain_job(xception, glioma_input, "gradcam"))
    assert pool.submit(explain_job(xception, glioma_input, "gradcam")) is handle
    explanation = handle.outcome(300)
    direct = explain_input(xception, glioma_input, "gradcam")
    assert explanation.label == direct.label == "glioma"
    assert np.allclose(explanation.map, direct.map, atol=1e-5)

    rise = pool.submit(explain_job(xception, glioma_input, "rise", options={"samples": 4000}))
    while rise.progress < 0.02 and not rise.over:
        time.sleep(0.05)
    asked = time.perf_counter()
    rise.cancel()
    assert rise.wait(60)
    assert rise.state == CANCELLED
    assert time.perf_counter() - asked < 10
