"""The builders of downloaded model bundles (``builder`` in ``models/manifest.toml``): the
checked files of a bundle → the model file. :func:`mestudio.modelfiles.fetch_bundle` is
given :func:`build_bundle` by its caller, so the file-lookup layer does not depend on the
importers (which need torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mestudio.errors import ModelFileError


def build_bundle(bundle: Any, files: list[Path], dest: Path) -> Path:
    """Build ``bundle``'s model file at ``dest`` from its downloaded, hash-checked ``files``
    (in the manifest's order); returns the path written."""
    if bundle.builder == "ststnet":
        from mestudio.inference.ststnet_import import import_ststnet

        return import_ststnet(files, dest)
    if bundle.builder == "fer":
        from mestudio.inference.fer_import import import_fer

        return import_fer(files[0], dest, expected_sha256=bundle.files[0][1])
    raise ModelFileError(f"unknown builder {bundle.builder!r}")
