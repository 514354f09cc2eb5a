"""Model files: the manifest, look-up order and downloads.

Look-up order for a file name: an explicit path → ``$MESTUDIO_MODELS_DIR`` → the
repository's ``models/`` folder → the user cache directory (``platformdirs``). The only
network access of the whole program is :func:`fetch` and :func:`fetch_bundle` (both run only
by ``mestudio models fetch``).

The manifest has two kinds of entries: ``[[model]]``, one file downloaded as is
(:class:`ManifestEntry`, :func:`load_manifest`), and ``[[bundle]]``, several files with pinned
hashes that are downloaded into a temporary folder, checked and built into one model file by a
builder (:class:`ManifestBundle`, :func:`load_bundles`): the STSTNet fold weights of their
authors, which the project never redistributes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class ManifestBundle:
    """One ``[[bundle]]`` of ``models/manifest.toml``: files fetched from ``base_url`` (each
    with its pinned sha256), built by ``builder`` into the model file ``output``."""

    name: str
    role: str
    description: str
    base_url: str
    #: environment variable that overrides ``base_url`` (a mirror; the tests' local server)
    url_env: str
    #: web page where a person can download the files by hand
    manual_url: str
    builder: str
    output: str
    licence: str
    #: ``(file name, sha256)`` pairs, in manifest order
    files: tuple[tuple[str, str], ...]
    #: fetched by a plain ``models fetch`` (and ``make install``) too, not only when named
    default: bool = False

    @property
    def hashes(self) -> dict[str, str]:
        """``{file name: sha256}``."""
        return dict(self.files)

    def source_url(self) -> str:
        """The base URL in use: ``$url_env`` when set, else ``base_url`` (ends with ``/``)."""
        url = (os.environ.get(self.url_env, "").strip() if self.url_env else "") or self.base_url
        return url if url.endswith("/") else url + "/"


_SHA256 = re.compile(r"[0-9a-f]{64}")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: what ``builder`` of a bundle may name
BUILDERS = ("ststnet", "fer")


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


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelFileError(f"model manifest not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelFileError(f"model manifest {path} is not valid TOML: {exc}") from exc


def load_manifest(path: Path = MANIFEST_PATH) -> list[ManifestEntry]:
    """The single-file ``[[model]]`` entries of ``models/manifest.toml``."""
    data = _read_manifest(path)
    fields = ManifestEntry.__dataclass_fields__
    return [ManifestEntry(**{k: str(m.get(k, "")) for k in fields}) for m in data.get("model", [])]


def load_bundles(path: Path = MANIFEST_PATH) -> list[ManifestBundle]:
    """The ``[[bundle]]`` entries of ``models/manifest.toml``.

    Raises:
        ModelFileError: a bundle without files, a file name that is not a plain name, a hash
            that is not 64 hex digits or an unknown builder.
    """
    data = _read_manifest(path)
    bundles = []
    for b in data.get("bundle", []):
        name = str(b.get("name", ""))
        files = b.get("files") or {}
        if not name or not isinstance(files, Mapping) or not files:
            raise ModelFileError(f"model manifest {path}: bundle {name or '?'} lists no files")
        pairs = []
        for fname, digest in files.items():
            digest = str(digest).lower()
            if not _PLAIN_NAME.fullmatch(fname) or not _SHA256.fullmatch(digest):
                raise ModelFileError(f"model manifest {path}: bundle {name}: bad file entry "
                                     f"{fname!r} = {digest!r} (a plain file name = a sha256)")
            pairs.append((fname, digest))
        builder = str(b.get("builder", ""))
        if builder not in BUILDERS:
            raise ModelFileError(f"model manifest {path}: bundle {name}: unknown builder "
                                 f"{builder!r} (known: {', '.join(BUILDERS)})")
        output = str(b.get("output", ""))
        if not _PLAIN_NAME.fullmatch(output):
            raise ModelFileError(f"model manifest {path}: bundle {name}: bad output {output!r}")
        fields = {k: str(b.get(k, "")) for k in ManifestBundle.__dataclass_fields__
                  if k not in ("files", "default")}
        default = b.get("default", False)
        if not isinstance(default, bool):
            raise ModelFileError(f"model manifest {path}: bundle {name}: default must be true "
                                 f"or false, got {default!r}")
        bundles.append(ManifestBundle(**fields, files=tuple(pairs),  # type: ignore[arg-type]
                                      default=default))
    return bundles


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
    response = _open_url(entry.url, entry.name, timeout_s)
    total = _content_length(response)
    # atomic_path: the file takes its name only once complete and verified
    with atomic_path(dest) as tmp, \
            tqdm(total=total, unit="B", unit_scale=True, desc=entry.name,
                 disable=not progress or None) as bar:  # None: only on a terminal
        digest, _ = _save_hashing(response, tmp, entry.name, on_block=bar.update)
        if entry.sha256 and digest != entry.sha256:
            raise ModelFileError(f"{entry.name}: sha256 mismatch (got {digest}, expected "
                                 f"{entry.sha256}); the download was discarded")
    log.info("saved %s (%s)", dest, digest[:12])
    return dest


def _open_url(url: str, what: str, timeout_s: float, hint: str = "") -> Any:
    """``urlopen(url)``; an unreachable server is an OfflineError, an HTTP error status a
    ModelFileError, each ending with ``hint``."""
    tail = f"\n{hint}" if hint else ""
    try:
        return urllib.request.urlopen(url, timeout=timeout_s)  # noqa: S310
    except urllib.error.HTTPError as exc:  # the server answered: not a network problem
        raise ModelFileError(f"cannot download {what}: HTTP {exc.code} {exc.reason} ({url})"
                             + tail) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(f"cannot download {what} from {url}: {reason} (are you offline?)"
                           + tail) from exc


def _content_length(response: Any) -> int | None:
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _save_hashing(response: Any, target: Path, what: str, hint: str = "",
                  on_block: Any = None) -> tuple[str, int]:
    """Stream ``response`` into ``target``: ``(sha256, bytes)``. A broken-off download is an
    OfflineError ending with ``hint``; a write error (disk full) stays an OSError."""
    h = hashlib.sha256()
    size = 0
    with response, open(target, "wb") as out:
        while True:
            try:
                block = response.read(1 << 16)
            except (OSError, urllib.error.URLError) as exc:  # timeout, connection reset
                raise OfflineError(f"download of {what} broke off: {exc}"
                                   + (f"\n{hint}" if hint else "")) from exc
            if not block:
                return h.hexdigest(), size
            out.write(block)
            h.update(block)
            size += len(block)
            if on_block is not None:
                on_block(len(block))


def manual_steps(bundle: ManifestBundle) -> str:
    """How to install a bundle by hand (a few lines, no leading newline)."""
    return (f"to install it by hand:\n"
            f"  1. download the {len(bundle.files)} files of {bundle.manual_url} into a folder\n"
            f"  2. run `mestudio import {bundle.builder} "
            f"{'FOLDER' if len(bundle.files) > 1 else 'FILE'}`")


#: ``build(bundle, files, dest) -> path``: makes a bundle's model file from its checked
#: files (:func:`mestudio.inference.builders.build_bundle`).
Builder = Callable[[Any, list[Path], Path], Path]


def fetch_bundle(bundle: ManifestBundle, build: Builder, dest_dir: Path | None = None,
                 timeout_s: float = 20.0, progress: bool = True) -> Path:
    """Download a bundle's files, check each hash and build its model file.

    The files go to a temporary folder that is removed afterwards whatever happens; each is
    checked against its pinned sha256 as it arrives, and only when every file is right is the
    model built (atomically) as ``dest_dir / bundle.output``. A failure leaves nothing in
    ``dest_dir``.

    ``build``: makes the model file from the checked files (the caller's, so this module
    does not depend on the importers). ``progress``: a bar over the files on stderr, shown
    only when stderr is a terminal.

    Returns:
        The path of the model file.

    Raises:
        OfflineError: the server cannot be reached (no network, DNS failure, timeout, a
            connection refused or broken off); the message ends with the manual steps.
        ModelFileError: a file is missing on the server, or differs from its pinned hash
            (tampered or truncated: the message names it), or the build fails.
    """
    from tqdm import tqdm

    base = bundle.source_url()
    dest = (dest_dir or user_cache_dir()) / bundle.output
    with tempfile.TemporaryDirectory(prefix=f"mestudio-fetch-{bundle.name}-") as tmp, \
            tqdm(total=len(bundle.files), unit="file", desc=bundle.name,
                 disable=not progress or None) as bar:  # None: only on a terminal
        files = []
        for fname, want in bundle.files:
            url = base + urllib.parse.quote(fname)
            target = Path(tmp) / fname
            digest, size, expected_size = _download_to(url, target, fname, bundle, timeout_s)
            if digest != want:
                short = (f"; truncated: {size} of {expected_size} bytes"
                         if expected_size is not None and size != expected_size else "")
                raise ModelFileError(
                    f"{fname} of {bundle.name} differs from its pinned sha256 (got "
                    f"{digest[:16]}..., expected {want[:16]}...{short}; from {url}): refused, "
                    "nothing was installed")
            files.append(target)
            bar.update(1)
        bar.close()
        log.info("%s: %d files checked against their pinned sha256", bundle.name, len(files))
        path = build(bundle, files, dest)  # each file was checked as it arrived
    return path


def _download_to(url: str, target: Path, fname: str, bundle: ManifestBundle,
                 timeout_s: float) -> tuple[str, int, int | None]:
    """Stream ``url`` into ``target``; returns (sha256, bytes, Content-Length or None)."""
    what = f"{fname} of {bundle.name}"
    hint = manual_steps(bundle)
    response = _open_url(url, what, timeout_s, hint)
    length = _content_length(response)
    digest, size = _save_hashing(response, target, what, hint)
    return digest, size, length
