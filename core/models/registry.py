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


def model_file(c: ModelCard) -> Path:
    return package_path(c.source["package"], c.source["file"])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
