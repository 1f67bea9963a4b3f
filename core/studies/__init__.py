"""Studies: the images a user brings, read into one `Study` type.

A study is one image, a multi-frame image (cine, enhanced CT/MR), a series of
single-frame DICOM files (a folder or a .zip), or a NIfTI volume. Pixels are kept in
physical units (the DICOM modality LUT applied: HU for CT) and shown through a VOI
window, MONOCHROME1 inverted, volumes in the standard radiological orientation.
Identifying DICOM attributes are kept apart from the metadata the viewer shows. Reading
a study never imports TensorFlow (an import-linter contract).

- `study`: Study, View, StudyError and the limits; `reader`: `open_study`/`open_files`,
  the format found from the content; one reader each: `dicom` (files and series),
  `nifti`, `pictures` (PNG, JPEG); `archives`: the one zip and folder reader, with its
  limits (labelled sets use it too); `windows`: VOI windows, LUTs, presets; `deid`:
  identifying attributes; `viewing`: built-in examples, uploads, the picture with its
  scale bar.
"""

from core.studies.deid import IDENTIFYING_KEYWORDS
from core.studies.reader import open_files, open_study
from core.studies.study import (
    MAX_PIXELS,
    MAX_VOXELS,
    PLANES,
    Study,
    StudyError,
    View,
    one_line,
)
from core.studies.windows import VOILUT, Window, apply_window, auto_window

__all__ = [
    "IDENTIFYING_KEYWORDS", "MAX_PIXELS", "MAX_VOXELS", "PLANES", "VOILUT", "Study",
    "StudyError", "View", "Window", "apply_window", "auto_window", "one_line", "open_files",
    "open_study",
]
