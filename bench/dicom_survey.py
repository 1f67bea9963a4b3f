"""Every pixel-bearing DICOM file in pydicom and pydicom-data, opened with MedLens.

`.venv/bin/python bench/dicom_survey.py [--markdown]` prints one row per file (package,
file, SOP class, transfer syntax, photometric, result: the shape opened or the one-line
reason) and a JSON summary line. A file is pixel-bearing when its header has Pixel Data,
Rows and Columns.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
import warnings
from pathlib import Path

import pydicom

from core.studies import StudyError, open_study


def files() -> list[tuple[str, Path]]:
    """(package, path) of every DICOM test file the two packages install."""
    found = [("pydicom", p) for p in
             sorted((Path(pydicom.__file__).parent / "data" / "test_files").glob("*.dcm"))]
    dist = importlib.metadata.distribution("pydicom-data")
    found += [("pydicom-data", Path(dist.locate_file(f))) for f in sorted(dist.files or [],
              key=str) if str(f).endswith(".dcm")]
    return found


def survey() -> list[dict]:
    rows = []
    for package, path in files():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=False, force=True)
            except Exception:
                continue
        if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
            continue
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        row = {
            "package": package,
            "file": path.name,
            "sop_class": getattr(ds.get("SOPClassUID"), "name", str(ds.get("SOPClassUID"))),
            "transfer_syntax": getattr(syntax, "name", str(syntax)),
            "photometric": str(ds.get("PhotometricInterpretation", "")),
        }
        started = time.perf_counter()
        try:
            study = open_study(path, name=path.name)
            study.display(study.default_index())
            row["result"] = (f"opened: {study.format} {'x'.join(map(str, study.shape))} "
                             f"{study.photometric}" + (f" {study.units}" if study.units else "")
                             + (" volume" if study.is_volume else ""))
            row["opened"] = True
        except StudyError as exc:
            row["result"], row["opened"] = str(exc), False
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
    return rows


def main() -> int:
    warnings.simplefilter("ignore")  # pydicom warns about each odd element of test files
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args()
    rows = survey()
    if args.markdown:
        print("| package | file | SOP class | transfer syntax | photometric | result |")
        print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["package"], r["file"], r["sop_class"], r["transfer_syntax"],
                 r["photometric"], r["result"]]
        print("| " + " | ".join(cells) + " |" if args.markdown else "  ".join(cells))
    print(json.dumps({"files": len(rows), "opened": sum(r["opened"] for r in rows),
                      "refused": [r["file"] for r in rows if not r["opened"]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
