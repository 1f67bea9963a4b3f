"""A trained model's files: `model.keras` and `card.json` in one folder (what
`medlens train --out DIR` writes and the Train page downloads as a zip), read back with
its card by `core.models.user.load_carded` (the Zoo's upload, `--model-file`)."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

from core.train.fit import Trained


def save(trained: Trained, folder: Path) -> tuple[Path, Path]:
    """Write `folder/model.keras` (the very file the card's sha256 names) and
    `folder/card.json`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, card = folder / "model.keras", folder / "card.json"
    shutil.copyfile(trained.path, model)
    card.write_text(json.dumps(trained.card.to_dict(), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return model, card


def zipped(trained: Trained) -> bytes:
    """model.keras and card.json in one zip (the page's download)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(trained.path, "model.keras")
        archive.writestr("card.json", json.dumps(trained.card.to_dict(), indent=2,
                                                 ensure_ascii=False) + "\n")
    return out.getvalue()
