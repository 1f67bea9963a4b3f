"""Loading an ONNX model leaves nothing in the user's home (issue 12).

onnxruntime 1.32 starts Microsoft's 1DS telemetry as its library loads: a device id and
a queue of events (the interpreter's path, OS, CPU) under
~/.cache/Microsoft/DeveloperTools/.onnxruntime, uploaded to mobile.events.data.microsoft.com.
`core.models.runtime.onnx` turns it off before the import; this runs the load in a fresh
interpreter, the way a server starts, with an empty home of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LOAD = """
from core import models
from core.models.samples import samples
from core.studies import open_study

model = models.load("braintumor-vgg16")
assert model.card.runtime == "onnx"
sample = samples(model.card)[0]
print(model.predict(model.card.prepare(open_study(sample.path, name=sample.name))).label)
"""


def test_loading_an_onnx_model_writes_nothing_under_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in {"XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                        "ORT_DISABLE_TELEMETRY"}}
    env["HOME"] = str(home)
    done = subprocess.run([sys.executable, "-c", LOAD], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() in {"glioma", "meningioma", "notumor", "pituitary"}
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert written == [], f"written under HOME: {written}"
