"""Model files: the manifest, look-up order and downloads.

Look-up order for a file name: an explicit path → ``$MESTUDIO_MODELS_DIR`` → the
repository's ``models/`` folder → the user cache directory (``platformdirs``). The only
network access of the whole program is :func:`fetch`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mestudio.errors import ModelFileError, OfflineError
from mestudio.fsutil import atomic_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

#: The repository's models/ folder (app/mestudio/../../models); in a PyInstaller build, the
#: models/ folder bundled beside the frozen package.
_FROZEN_DIR = getattr(sys, "_MEIPASS", None)
REPO_MODELS_DIR = (Path(_FROZEN_DIR) if _FROZEN_DIR else Path(__file__).resolve().parents[2]) / "models"
MANIFEST_PATH = REPO_MODELS_DIR / "manifest.toml"

YUNET = "face_detection_yunet_2023mar.onnx"
LBF_5PT = "lbf_5pt.yaml"
LBF_68 = "lbfmodel.yaml"


@dataclass(frozen=True)
class ManifestEntry:
    """One model file of ``models/manifest.toml``."""

    name: str
    role: str
    description: str
    url: str
    sha256: str
    licence: str
    fallback: str


def user_cache_dir() -> Path:
    """The per-user folder where ``models fetch`` stores downloads."""
    from platformdirs import user_cache_dir as _ucd

    return Path(_ucd("mestudio", appauthor=False)) / "models"


def search_dirs() -> list[Path]:
    """Folders searched for a model file name, in order."""
    dirs = []
    env = os.environ.get("MESTUDIO_MODELS_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    dirs += [REPO_MODELS_DIR, user_cache_dir()]
    return dirs


def load_manifest(path: Path = MANIFEST_PATH) -> list[ManifestEntry]:
    """Parse ``models/manifest.toml``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelFileError(f"model manifest not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelFileError(f"model manifest {path} is not valid TOML: {exc}") from exc
    fields = ManifestEntry.__dataclass_fields__
    return [ManifestEntry(**{k: str(m.get(k, "")) for k in fields}) for m in data.get("model", [])]


def find_model(name: str, explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate a model file; None when it is nowhere.

    Args:
        name: the manifest file name, e.g. ``"lbf_5pt.yaml"``.
        explicit: a path the user gave; when set it must exist (else ModelFileError).
    """
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ModelFileError(f"model file not found: {p}")
        return p
    for d in search_dirs():
        p = d / name
        if p.is_file():
            return p
    return None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fetch(entry: ManifestEntry, dest_dir: Path | None = None, timeout_s: float = 20.0,
          progress: bool = True) -> Path:
    """Download one manifest entry atomically and check its hash.

    The file is written to a temporary name in the destination folder and renamed only after
    the hash matches, so an interrupted download never leaves a half file under the real name.

    ``progress``: a byte-count bar on stderr, shown only when stderr is a terminal.

    Raises:
        OfflineError: the URL cannot be reached.
        ModelFileError: the hash does not match or the entry has no URL.
    """
    from tqdm import tqdm

    if not entry.url:
        raise ModelFileError(f"{entry.name} has no download URL in the manifest")
    dest_dir = dest_dir or user_cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / entry.name
    try:
        response = urllib.request.urlopen(entry.url, timeout=timeout_s)  # noqa: S310
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(f"cannot download {entry.name}: {reason} (are you offline?)") from exc
    total = int(response.headers.get("Content-Length") or 0) or None
    h = hashlib.sha256()
    try:
        # atomic_path: the file takes its name only once complete and verified
        with atomic_path(dest) as tmp, open(tmp, "wb") as out, \
                tqdm(total=total, unit="B", unit_scale=True, desc=entry.name,
                     disable=not progress or None) as bar:  # None: only on a terminal
            while block := response.read(1 << 16):
                out.write(block)
                h.update(block)
                bar.update(len(block))
            digest = h.hexdigest()
            if entry.sha256 and digest != entry.sha256:
                raise ModelFileError(f"{entry.name}: sha256 mismatch (got {digest}, expected "
                                     f"{entry.sha256}); the download was discarded")
    except (OSError, urllib.error.URLError) as exc:
        raise OfflineError(f"download of {entry.name} broke off: {exc}") from exc
    log.info("saved %s (%s)", dest, digest[:12])
    return dest
