"""Explanation speed: each method's cost as a multiple of one compiled forward pass.

(a) The real nested Xception (braintumor-xception) on a real sample: one compiled
    forward pass (`forward_function`, batch 1) and each method of `METHODS` through
    `explain(model, x, name)` with its default options and the predicted class as target,
    as the app calls it. Each is warm: one untimed call traces it first; then the median
    of k calls, k adapted to the method's cost. Every timed call is paired with forward
    passes timed just before it, and a method's multiple is its median over the median
    of those forward passes: load from other processes then weighs on both alike.
(b) Against tf-keras-vis on flat models it can explain: a Keras ResNet50 (weights=None:
    nothing can be downloaded, and timing needs no trained weights) and, where it loads,
    the Keras port of the VGG16 (braintumor-vgg16, runtime "keras"; the CAMs and
    saliency only). Both sides warm, called in turn round after round (so that load
    from other processes weighs on both alike), medians. tf-keras-vis is given the
    target class; ours finds it (the predicted class) as the app does, so its times
    include that forward pass.

Targets (the issue): Grad-CAM on the Xception at most 1.5x a forward pass; SmoothGrad
(20 samples) at most 45x; Grad-CAM on ResNet50 at least 4x faster than tf-keras-vis.

    .venv/bin/python bench/explain_speed.py [--quick] [--all-channels] [--write-costs]
                                            [--no-compare] [--sample NAME]

`--write-costs` writes assets/explain-costs.json (each method's multiple, read by
core/explain/costs.py for the app). Prints tables, then one JSON line.

(c) The attention methods refuse the Xception (it has no attention): they are timed the
    same way on a ViT at the Train page's recipe size (core.nets.vit, 32x32x1, patch 4,
    the default dim/depth/heads, untrained: timing needs no trained weights), against
    that ViT's own forward pass; their cost entries say so (`model`).
    `--attention-only --write-costs` times only them and updates their entries in the
    file, keeping every other entry as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, so sys.path starts at bench/; put the repo first, ahead of a
# stray `tests` package that another distribution installs into site-packages.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core import models  # noqa: E402
from core.explain import METHODS, explain  # noqa: E402
from core.explain.backend.graph import resolve_layer  # noqa: E402
from core.explain.costs import COSTS_FILE  # noqa: E402
from core.explain.methods.attention.base import AttentionMethod  # noqa: E402
from core.models.inputs import prepare  # noqa: E402
from core.models.runtime.keras import forward_function, import_tensorflow  # noqa: E402
from core.models.samples import samples  # noqa: E402
from core.studies import open_study  # noqa: E402

MODEL = "braintumor-xception"
SAMPLE = "Te-gl_0010.jpg"
# (method, the most its time may be as a multiple of a forward pass)
LIMITS = {"gradcam": 1.5, "smoothgrad": 45.0}
SPEEDUP = 4.0  # Grad-CAM on ResNet50: at least this many times faster than tf-keras-vis
RESNET_LAYER = "conv5_block3_out"
PAIRED = 3  # forward passes timed before each timed call of a method
VGG_METHODS = ("gradcam", "gradcam++", "layercam", "saliency")


@dataclass(frozen=True)
class Plan:
    """How many times to call: about `budget` seconds, at least `least`, at most `most`."""

    budget: float
    least: int
    most: int
    forward: int  # repeats of the forward pass on its own


FULL = Plan(budget=8.0, least=3, most=31, forward=60)
QUICK = Plan(budget=1.5, least=1, most=7, forward=20)


@dataclass(frozen=True)
class Timing:
    ms: float  # median of the timed calls
    forward_ms: float  # median of the forward passes timed alongside them
    repeats: int
    forwards: tuple[float, ...] = field(default=(), repr=False)  # those passes, ms

    @property
    def multiple(self) -> float:
        return self.ms / self.forward_ms


def clock(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def timed(fn: Callable[[], object], forward: Callable[[], object], plan: Plan,
          least: int | None = None, warm: bool = True) -> Timing:
    """Median ms of `fn` (after one untimed call that traces it, if `warm`), each call
    paired with `PAIRED` forward passes timed just before it."""
    return timed_together([fn], forward, plan, least, warm)[0]


def timed_together(fns: list[Callable[[], object]], forward: Callable[[], object], plan: Plan,
                   least: int | None = None, warm: bool = True) -> list[Timing]:
    """`timed` for several calls taken in turn, round after round, so that load from
    other processes weighs on each alike: their ratio is measured in the same rounds."""
    if warm:
        for fn in fns:
            fn()
    calls: list[list[float]] = [[] for _ in fns]
    forwards: list[float] = []
    wanted = None
    while wanted is None or len(calls[0]) < wanted:
        forwards.extend(clock(forward) for _ in range(PAIRED))
        for times, fn in zip(calls, fns, strict=True):
            times.append(clock(fn))
        if wanted is None:  # the first round sets how many: about `budget` seconds
            spent = sum(times[0] for times in calls)
            wanted = round(plan.budget * 1000 / max(spent, 1e-3))
            wanted = min(max(wanted, least or plan.least, plan.least), plan.most)
    return [Timing(statistics.median(times), statistics.median(forwards), len(times),
                   tuple(forwards)) for times in calls]


def forward_alone(forward: Callable[[], object], repeats: int) -> float:
    """Median ms of `repeats` forward passes in a row (warm)."""
    forward()
    return statistics.median(clock(forward) for _ in range(repeats))


def device() -> str:
    """The device TensorFlow places work on, in words, with this machine's CPU."""
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    cpu = f"{os.cpu_count()} cores"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu += f", {line.split(':', 1)[1].strip()}"
                break
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                 for g in gpus]
        return f"GPU ({', '.join(names)}); host CPU {cpu}"
    return f"CPU ({cpu}; TensorFlow sees no GPU)"


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


# -- (a) every method on the nested Xception -----------------------------------------------

def xception_input(sample_name: str):
    classifier = models.load(MODEL)
    found = samples(classifier.card)
    sample = next((s for s in found if s.name == sample_name), found[0])
    x = prepare(open_study(sample.path), classifier.card.input_spec).array[None]
    return classifier.keras_model, x, sample.name


def forward_call(model, x) -> Callable[[], object]:
    tf = import_tensorflow()
    fn = forward_function(model)
    return lambda: fn(tf.constant(x)).numpy()


def bench_methods(model, x, plan: Plan, all_channels: bool) -> dict[str, Timing]:
    forward = forward_call(model, x)
    results: dict[str, Timing] = {}
    for name in METHODS:
        if METHODS[name].refusal(model) is not None:  # attention methods: see (c)
            continue
        least = 7 if name in LIMITS and plan is FULL else None
        results[name] = timed(lambda name=name: explain(model, x, name), forward, plan, least)
        print(f"  {name}: {results[name].ms:.0f} ms", file=sys.stderr, flush=True)
    if all_channels:  # every channel of the layer: one masked forward pass each, timed once
        results["scorecam (all channels)"] = timed(
            lambda: explain(model, x, "scorecam", max_channels=0), forward,
            Plan(budget=0, least=1, most=1, forward=0), warm=False)
    return results


def verdict(name: str, t: Timing) -> tuple[str, str]:
    if name not in LIMITS:
        return "", ""
    return f"<= {LIMITS[name]:g}x", "PASS" if t.multiple <= LIMITS[name] else "FAIL"


def alongside(results: dict[str, Timing]) -> float:
    """Median ms of every forward pass timed alongside the methods."""
    return statistics.median(f for t in results.values() for f in t.forwards)


def print_methods(results: dict[str, Timing], forward_ms: float, repeats: int) -> None:
    passes = sum(len(t.forwards) for t in results.values())
    print(f"Forward pass (compiled, batch 1): {forward_ms:.1f} ms median of {repeats} in a row; "
          f"{alongside(results):.1f} ms median of the {passes} timed alongside the methods")
    print("x fwd: a method's median over the median of the forward passes timed alongside "
          "it (fwd ms)")
    print(f"{'method':<26}{'ms':>10}{'fwd ms':>9}{'x fwd':>8}{'n':>4}  {'target':<9}result")
    for name, t in results.items():
        target, result = verdict(name, t)
        print(f"{name:<26}{t.ms:>10.1f}{t.forward_ms:>9.1f}{t.multiple:>8.2f}{t.repeats:>4}"
              f"  {target:<9}{result}")


# -- (c) the attention methods on a ViT ------------------------------------------------------

VIT = "vit (core.nets.vit 32x32x1, patch 4, default options, untrained)"


def vit_input():
    import keras

    from core.nets.vit import vit

    keras.utils.set_random_seed(0)
    model = vit((32, 32, 1), 3, patch=4)
    x = np.random.default_rng(0).random((1, 32, 32, 1)).astype(np.float32)
    return model, x


def bench_attention(plan: Plan) -> tuple[dict[str, Timing], float]:
    """The attention methods (which refuse the Xception) timed on the recipe-size ViT;
    and that ViT's forward pass alone (ms)."""
    model, x = vit_input()
    forward = forward_call(model, x)
    results = {}
    for name, method in METHODS.items():
        if isinstance(method, AttentionMethod):
            results[name] = timed(lambda name=name: explain(model, x, name), forward, plan)
            print(f"  {name} on the ViT: {results[name].ms:.1f} ms", file=sys.stderr,
                  flush=True)
    return results, forward_alone(forward, plan.forward)


def attention_entries(results: dict[str, Timing], plan: Plan) -> dict[str, dict]:
    return {name: {"multiple": round(t.multiple, 3), "ms": round(t.ms, 2),
                   "forward_ms": round(t.forward_ms, 2), "repeats": t.repeats,
                   "options": METHODS[name].resolve({}), "model": VIT,
                   "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                   "written_by": "bench/explain_speed.py --attention-only --write-costs"
                                 + (" --quick" if plan is QUICK else "")}
            for name, t in results.items()}


def update_attention_costs(results: dict[str, Timing], plan: Plan) -> None:
    """The attention methods' entries replaced in the existing file, the rest kept."""
    data = json.loads(COSTS_FILE.read_text(encoding="utf-8"))
    data["methods"].update(attention_entries(results, plan))
    COSTS_FILE.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote the attention methods' entries in {COSTS_FILE.relative_to(ROOT)}")


# -- (b) against tf-keras-vis on flat models -----------------------------------------------

@contextlib.contextmanager
def hushed():
    """tf-keras-vis warns on every call and Score-CAM prints predict's progress bars."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def tfkv_calls(model, x, target: int, layer: str) -> dict[str, Callable[[], object]]:
    """tf-keras-vis doing what our methods do, on a flat functional model, by our name."""
    with hushed():
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.layercam import Layercam
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
        from tf_keras_vis.utils.scores import CategoricalScore

        linear = {"model_modifier": ReplaceToLinear(), "clone": True}
        gradcam = Gradcam(model, **linear)
        plusplus = GradcamPlusPlus(model, **linear)
        layercam = Layercam(model, **linear)
        saliency = Saliency(model, **linear)
        scorecam = Scorecam(model)  # on probabilities, as tf-keras-vis recommends
    score = CategoricalScore(target)
    cam = {"penultimate_layer": layer, "seek_penultimate_conv_layer": False}
    smooth = METHODS["smoothgrad"].resolve({})
    top = METHODS["scorecam"].resolve({})["max_channels"]

    def hush(fn):
        def call():
            with hushed():
                return fn()
        return call

    return {
        "gradcam": hush(lambda: gradcam(score, x, **cam)),
        "gradcam++": hush(lambda: plusplus(score, x, **cam)),
        "layercam": hush(lambda: layercam(score, x, **cam)),
        "saliency": hush(lambda: saliency(score, x)),
        "smoothgrad": hush(lambda: saliency(score, x, smooth_samples=smooth["samples"],
                                            smooth_noise=smooth["noise"])),
        "scorecam": hush(lambda: scorecam(score, x, max_N=top, **cam)),
    }


def compare(model, x, layer: str, plan: Plan, names: tuple[str, ...] | None = None) -> dict:
    """Ours and tf-keras-vis on each method both have (or those of `names`), warm medians."""
    forward = forward_call(model, x)
    target = int(np.argmax(forward()))
    theirs = tfkv_calls(model, x, target, layer)
    theirs = {name: call for name, call in theirs.items() if names is None or name in names}
    out = {"layer": layer, "forward_ms": round(forward_alone(forward, plan.forward), 2),
           "methods": {}}
    for name, their_call in theirs.items():
        least = 7 if name == "gradcam" and plan is FULL else None
        # `layer` is read by the CAMs and ignored by the input-gradient methods.
        ours, tfkv = timed_together(
            [lambda name=name: explain(model, x, name, layer=layer), their_call], forward,
            plan, least)
        out["methods"][name] = {
            "ours_ms": round(ours.ms, 2), "ours_multiple": round(ours.multiple, 2),
            "tfkv_ms": round(tfkv.ms, 2), "tfkv_multiple": round(tfkv.multiple, 2),
            "speedup": round(tfkv.ms / ours.ms, 2), "repeats": ours.repeats,
        }
        print(f"  {name}: ours {ours.ms:.0f} ms, tf-keras-vis {tfkv.ms:.0f} ms",
              file=sys.stderr, flush=True)
    return out


def print_compare(title: str, result: dict) -> None:
    print(f"\n{title}: layer {result['layer']}, forward pass {result['forward_ms']:.1f} ms")
    print(f"{'method':<14}{'ours ms':>10}{'x fwd':>8}{'tf-keras-vis ms':>17}{'x fwd':>8}"
          f"{'speed-up':>10}  {'target':<8}result")
    for name, r in result["methods"].items():
        target = result_text = ""
        if name == "gradcam" and "resnet50" in title.lower():
            target = f">= {SPEEDUP:g}x"
            result_text = "PASS" if r["speedup"] >= SPEEDUP else "FAIL"
        print(f"{name:<14}{r['ours_ms']:>10.1f}{r['ours_multiple']:>8.2f}{r['tfkv_ms']:>17.1f}"
              f"{r['tfkv_multiple']:>8.2f}{r['speedup']:>9.2f}x  {target:<8}{result_text}")


def resnet50(x150: np.ndarray) -> tuple[object, np.ndarray]:
    import cv2
    import keras

    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
    x = cv2.resize(x150[0], (224, 224), interpolation=cv2.INTER_LINEAR)[None]
    return model, x.astype(np.float32)


def vgg16_port(sample_name: str):
    """The Keras port of the VGG16 and a real sample for it, or None with why not."""
    try:
        classifier = models.load("braintumor-vgg16", runtime="keras")
    except Exception as exc:  # noqa: BLE001  (any failure means: not there yet)
        return None, f"{type(exc).__name__}: {exc}"
    found = samples(classifier.card)
    sample = next((s for s in found if s.name == sample_name), found[0])
    x = prepare(open_study(sample.path), classifier.card.input_spec).array[None]
    return (classifier.keras_model, x), ""


# -- costs for the app ----------------------------------------------------------------------

def write_costs(results: dict[str, Timing], forward_ms: float, where: str, sample: str,
                plan: Plan, attention: dict[str, Timing] | None = None) -> None:
    data = {
        "about": ("Each explanation method's time as a multiple of one compiled forward "
                  "pass (batch 1) of the same model: the app multiplies it by the forward "
                  "time it measures to say how long a method will take before it runs."),
        "written_by": "bench/explain_speed.py --write-costs"
                      + (" --quick" if plan is QUICK else ""),
        "model": MODEL,
        "sample": sample,
        "device": where,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": load_average(),
        "measured": (f"explain(model, x, method) with default options and the predicted "
                     f"class as target; one untimed call first (tracing), then the median of "
                     f"{plan.least}-{plan.most} calls; each call paired with {PAIRED} forward "
                     "passes timed just before it, and the multiple is the call median over "
                     "their median"),
        "forward_ms": round(forward_ms, 2),
        "forward_alongside_ms": round(alongside(results), 2),
        "methods": {
            name: {"multiple": round(t.multiple, 3), "ms": round(t.ms, 2),
                   "forward_ms": round(t.forward_ms, 2), "repeats": t.repeats,
                   "options": METHODS[name].resolve({})}
            for name, t in results.items() if name in METHODS
        },
    }
    data["methods"].update(attention_entries(attention or {}, plan))
    extra = {name: t for name, t in results.items() if name not in METHODS}
    if extra:
        data["variants"] = {name: {"multiple": round(t.multiple, 3), "ms": round(t.ms, 2)}
                            for name, t in extra.items()}
    COSTS_FILE.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {COSTS_FILE.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--all-channels", action="store_true",
                        help="also Score-CAM over every channel, timed once (about a minute)")
    parser.add_argument("--write-costs", action="store_true",
                        help=f"write {COSTS_FILE.relative_to(ROOT)} for the app")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip the tf-keras-vis comparison (ResNet50, VGG16)")
    parser.add_argument("--sample", default=SAMPLE, help=f"sample file name (default {SAMPLE})")
    parser.add_argument("--attention-only", action="store_true",
                        help="time only the attention methods, on the recipe-size ViT "
                             "(with --write-costs: update their entries only)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    if args.attention_only:
        attention, vit_forward = bench_attention(plan)
        print(f"\nDevice: {device()}\n{VIT}: forward pass {vit_forward:.2f} ms")
        print_methods(attention, vit_forward, plan.forward)
        if args.write_costs:
            update_attention_costs(attention, plan)
        print(json.dumps({"model": VIT, "forward_ms": round(vit_forward, 2),
                          "methods": attention_entries(attention, plan)}))
        return 0

    where = device()
    load_before = load_average()
    started = time.perf_counter()
    model, x, sample = xception_input(args.sample)
    forward_ms = forward_alone(forward_call(model, x), plan.forward)
    print(f"Device: {where}; load average {load_before}", file=sys.stderr, flush=True)
    results = bench_methods(model, x, plan, args.all_channels)
    attention, vit_forward = bench_attention(plan)

    resnet = vgg = None
    vgg_skipped = "--no-compare"
    if not args.no_compare:
        resnet = compare(*resnet50(x), RESNET_LAYER, plan)
        port, vgg_skipped = vgg16_port(args.sample)
        if port is not None:
            vgg_model, vgg_x = port
            # The CAMs and saliency only: its forward pass is 5x the Xception's.
            vgg = compare(vgg_model, vgg_x, resolve_layer(vgg_model, None), plan,
                          VGG_METHODS)

    print(f"\nDevice: {where}")
    print(f"Load average (1, 5, 15 min) at start {load_before}, at end {load_average()}")
    print(f"\n{MODEL} on {sample}, input {tuple(x.shape)}:")
    print_methods(results, forward_ms, plan.forward)
    print(f"\n{VIT}: forward pass {vit_forward:.2f} ms")
    print_methods(attention, vit_forward, plan.forward)
    if resnet is not None:
        print_compare("ResNet50 (weights=None), against tf-keras-vis", resnet)
    if vgg is not None:
        print_compare("VGG16 Keras port (braintumor-vgg16), against tf-keras-vis", vgg)
    elif not args.no_compare:
        print(f"\nVGG16 Keras port: skipped ({vgg_skipped})")
    if args.write_costs:
        write_costs(results, forward_ms, where, sample, plan, attention)

    targets = {name: {"multiple": round(results[name].multiple, 3), "limit": limit,
                      "pass": results[name].multiple <= limit}
               for name, limit in LIMITS.items()}
    speedup = resnet["methods"]["gradcam"]["speedup"] if resnet else None
    if resnet is not None:
        targets["resnet50_gradcam_speedup"] = {"speedup": speedup, "least": SPEEDUP,
                                               "pass": speedup >= SPEEDUP}
    print(json.dumps({
        "device": where,
        "model": MODEL,
        "sample": sample,
        "forward_ms": round(forward_ms, 2),
        "forward_alongside_ms": round(alongside(results), 2),
        "methods": {name: {"ms": round(t.ms, 2), "multiple": round(t.multiple, 3),
                           "forward_ms": round(t.forward_ms, 2), "repeats": t.repeats}
                    for name, t in results.items()},
        "resnet50_gradcam_speedup": speedup,
        "targets": targets,
        "resnet50": resnet,
        "vgg16_port": vgg if vgg is not None else {"skipped": vgg_skipped},
        "quick": args.quick,
        "load_average": [load_before, load_average()],
        "seconds": round(time.perf_counter() - started, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
