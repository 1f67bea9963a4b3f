"""Evaluations as text for a terminal."""

from __future__ import annotations

import math

from core.evaluate.run import Evaluation


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def summary(evaluation: Evaluation) -> str:
    """A readable table for the terminal: headline figures, per class, confusion matrix."""
    e = evaluation
    width = max(12, *(len(label) + 2 for label in e.labels))
    lines = [
        f"{e.model} on {e.n} images ({e.set_name})",
        f"accuracy {_number(e.accuracy)} ({int(e.correct.sum())}/{e.n})  macro F1 "
        f"{_number(e.macro_f1)}  macro AUC {_number(e.macro_auc)}  ECE {_number(e.ece)}",
        "",
        f"{'label':{width}}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}{'AUC':>8}",
    ]
    for s in e.per_class:
        lines.append(f"{s.label:{width}}{_number(s.precision):>10}{_number(s.recall):>8}"
                     f"{_number(s.f1):>8}{s.support:>9}{_number(e.roc_auc[s.label]):>8}")
    lines += ["", "confusion matrix (rows true, columns predicted):",
              " " * width + "".join(f"{label:>{width}}" for label in e.labels)]
    for label, row in zip(e.labels, e.confusion, strict=True):
        lines.append(f"{label:{width}}" + "".join(f"{int(v):>{width}}" for v in row))
    lines += [f"note: {note}" for note in e.notes]
    lines.append(f"warning: {e.domain_note()}" if e.domain_note() else e.domain_caption())
    lines += [f"skipped {s.name}: {s.reason}" for s in e.skipped]
    return "\n".join(lines)
