"""Every recognition model the application can find, with one line saying what it is.

The settings dialog, ``mestudio models list`` and the status bar use :func:`find_models`:
the ``*.onnx`` files with ``mestudio.*`` metadata in the model folders (``$MESTUDIO_MODELS_DIR``,
the repository's ``models/``, the user model folder), i.e. the shipped synthetic M3ENet, the
real-data STSTNet ensemble once fetched, and models a user exported there. Files of other
programs (YuNet) and broken files are skipped; nothing here runs a model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    """One recognition model file.

    Attributes:
        path: the ``.onnx`` file.
        name: display name (metadata ``name``, else the file stem).
        description: one line (metadata ``description``, else built from the metadata).
        synthetic: trained on synthetic data only.
        classes: class names in output order.
        training_data: the metadata's ``training_data`` ("real", "synthetic", a dataset...).
        default: the model the application uses when none is named.
    """

    path: Path
    name: str
    description: str
    synthetic: bool
    classes: tuple[str, ...]
    training_data: str
    default: bool = False

    @property
    def badge(self) -> str:
        """What the status bar and the kiosk say about the model."""
        return model_badge(self.synthetic, len(self.classes))


def model_badge(synthetic: bool, n_classes: int) -> str:
    """``"SYNTHETIC DEMO MODEL"`` or ``"real-data model · K classes"``."""
    return "SYNTHETIC DEMO MODEL" if synthetic else f"real-data model · {n_classes} classes"


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The decoded ``mestudio.*`` metadata of an ONNX file, or None (not ours / unreadable)."""
    import onnx

    from mestudio.inference import contract

    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises many types; such a file is not listed
        log.debug("%s is not a readable ONNX file: %s", path, exc)
        return None
    props = {p.key: p.value for p in proto.metadata_props if p.key.startswith(contract.PREFIX)}
    if not props:
        return None
    try:
        return contract.decode_metadata(props)
    except ValueError:
        return None


def describe_metadata(meta: dict[str, Any]) -> str:
    """One line saying what a model is, from its decoded metadata (plain text, <= 200
    characters): its ``description``, else architecture, classes and training data."""
    text = meta.get("description")
    if isinstance(text, str) and text.strip():
        return " ".join(text.split())[:200]
    classes = meta.get("classes") or []
    what = ("trained on synthetic data (a demo: not an emotion recogniser)"
            if meta.get("synthetic") else f"trained on {meta.get('training_data', '?')} data")
    return f"{meta.get('architecture', '?')}, {len(classes)} classes, {what}"


def find_models(extra: list[str | os.PathLike[str]] | None = None) -> list[ModelEntry]:
    """The recognition models in the model folders (and the files in ``extra``), the default
    first; one entry per file name (the first folder in look-up order wins)."""
    from mestudio.inference.engine import default_model_path
    from mestudio.modelfiles import search_dirs

    default = default_model_path()
    seen: set[str] = set()
    candidates: list[Path] = [Path(p) for p in (extra or [])]
    for d in search_dirs():
        if d.is_dir():
            candidates += sorted(d.glob("*.onnx"))
    out = []
    for path in candidates:
        if path.name in seen or not path.is_file():
            continue
        meta = read_metadata(path)
        if meta is None or "classes" not in meta:
            continue
        if meta.get("event_kinds") == ["macro"]:
            continue  # the expression model: it names macro events, chosen on its own
        seen.add(path.name)
        classes = tuple(str(c) for c in meta.get("classes") or [])
        out.append(ModelEntry(
            path=path, name=str(meta.get("name") or path.name.removesuffix(".onnx")),
            description=describe_metadata(meta), synthetic=bool(meta.get("synthetic")),
            classes=classes, training_data=str(meta.get("training_data", "")),
            default=default is not None and path.resolve() == default.resolve()))
    out.sort(key=lambda e: (not e.default, e.synthetic, e.name))
    return out
