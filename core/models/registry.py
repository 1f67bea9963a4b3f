"""Where model files are: inside installed PyPI distributions, found through
`importlib.metadata` without importing them, and checked by sha256."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from core.models.cards import ModelCard, ModelError


def package_path(package: str, relative: str) -> Path:
    """A file or folder inside an installed distribution, found without importing it."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"package '{package}' is not installed (make setup installs it)"
        ) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise ModelError(f"'{relative}' is missing from package '{package}' {dist.version}")
    return path


# Models trained by MedLens ship in the repository (assets/models), not in a package.
REPOSITORY = Path(__file__).resolve().parents[2]


def model_file(c: ModelCard) -> Path:
    """The model's file: inside its package, or in the repository for a model trained in
    MedLens (a card whose source names no package)."""
    if "package" not in c.source:
        path = REPOSITORY / c.source["file"]
        if not path.is_file():
            raise ModelError(f"{c.id}: {c.source['file']} is missing from the repository")
        return path
    return package_path(c.source["package"], c.source["file"])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
