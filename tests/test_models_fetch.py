"""``mestudio models fetch ststnet-megc2019`` against a local HTTP server (never the network).

The server (127.0.0.1, an ephemeral port) serves the shared copy of the authors' STSTNet fold
weights, or a tampered/truncated copy of it in ``tmp_path``; ``$MESTUDIO_STSTNET_URL`` points
the fetch at it and ``--dest`` keeps the result out of the user cache (the XDG folders are
``tmp_path`` ones anyway, see ``conftest.py``).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from mestudio import modelfiles
from mestudio.cli import main
from mestudio.errors import ModelFileError

BUNDLE = "ststnet-megc2019"
OUTPUT = "ststnet_megc2019.onnx"


@pytest.fixture
def weights_dir(models_dir: Path) -> Path:
    folder = models_dir / "ststnet_megc2019"
    if not (folder / "SHA256SUMS").is_file():
        pytest.skip(f"the STSTNet fold weights are not in the shared data ({folder})")
    return folder


@pytest.fixture
def own_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder of the downloads, to see that it is removed afterwards."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def _bundle() -> modelfiles.ManifestBundle:
    (bundle,) = [b for b in modelfiles.load_bundles() if b.name == BUNDLE]
    return bundle


def _fetch(dest: Path, *extra: str) -> int:
    return main(["models", "fetch", BUNDLE, "--dest", str(dest), "--no-progress", *extra])


def test_manifest_pins_the_published_hashes_and_keeps_the_plain_entries(
        weights_dir: Path) -> None:
    bundle = _bundle()
    published = dict(line.split()[::-1] for line in
                     (weights_dir / "SHA256SUMS").read_text().splitlines() if line.strip())
    assert bundle.hashes == published and len(bundle.files) == 68
    assert bundle.output == OUTPUT and bundle.role == "recognition"
    assert bundle.base_url == ("https://raw.githubusercontent.com/christy1206/STSTNet/master/"
                               "STSTNet_Weights/")
    assert [e.name for e in modelfiles.load_manifest()] == [
        "face_detection_yunet_2023mar.onnx", "lbf_5pt.yaml", "lbfmodel.yaml"]
    assert not list(Path(modelfiles.REPO_MODELS_DIR).glob("*.pth"))  # never redistributed


def test_bundle_entries_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.toml"
    bad.write_text('[[bundle]]\nname = "x"\nbuilder = "ststnet"\noutput = "x.onnx"\n'
                   '[bundle.files]\n"../evil.pth" = "' + "0" * 64 + '"\n', encoding="utf-8")
    with pytest.raises(ModelFileError, match="evil"):
        modelfiles.load_bundles(bad)


def test_fetch_builds_a_real_data_model(weights_dir: Path, serve, tmp_path: Path,
                                        own_tempdir: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    from mestudio.inference.engine import InferenceEngine

    monkeypatch.setenv("MESTUDIO_STSTNET_URL", serve(weights_dir).rstrip("/"))
    dest = tmp_path / "models"
    assert _fetch(dest) == 0
    out = capsys.readouterr().out
    path = dest / OUTPUT
    assert f"wrote {path}" in out and "68 files" in out
    assert "not redistribute" in out and "terms:" in out
    engine = InferenceEngine(path)
    assert len(engine.classes) == 3 and engine.metadata["training_data"] == "real"
    assert not list(own_tempdir.iterdir())  # the downloads are gone

    assert _fetch(dest) == 0  # a second time: already there
    assert "already present" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_a_damaged_file_is_refused(damage: str, weights_dir: Path, serve, tmp_path: Path,
                                   own_tempdir: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "mirror"
    shutil.copytree(weights_dir, copy)
    victim = copy / "s05.pth"
    data = bytearray(victim.read_bytes())
    if damage == "tampered":
        data[len(data) // 2] ^= 0x01
    else:
        del data[len(data) // 2:]
    victim.write_bytes(bytes(data))
    monkeypatch.setenv("MESTUDIO_STSTNET_URL", serve(copy))
    dest = tmp_path / "models"
    assert _fetch(dest) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "s05.pth" in err[0] and "sha256" in err[0]
    assert not list(dest.glob("*.onnx")) if dest.exists() else True
    assert not list(own_tempdir.iterdir())


def test_unreachable_server_gives_the_manual_steps(tmp_path: Path, own_tempdir: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MESTUDIO_STSTNET_URL", f"http://127.0.0.1:{port}/weights/")
    dest = tmp_path / "models"
    assert _fetch(dest) == 2
    err = capsys.readouterr().err
    assert "offline" in err
    assert "https://github.com/christy1206/STSTNet/tree/master/STSTNet_Weights" in err
    assert "mestudio import ststnet FOLDER" in err
    assert len(err.strip().splitlines()) <= 4
    assert not dest.exists() and not list(own_tempdir.iterdir())


def test_list_shows_the_bundle_and_plain_fetch_leaves_it_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(modelfiles, "fetch", lambda *a, **k: pytest.fail("no download here"))
    monkeypatch.setattr(modelfiles, "fetch_bundle",
                        lambda *a, **k: pytest.fail("a plain fetch does not fetch bundles"))
    assert main(["models", "list"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(BUNDLE)][0]
    assert "none published (research datasets)" in line
    assert "MISSING" in line and f"mestudio models fetch {BUNDLE}" in line
    # every plain file and the default bundle (the expression model) present: nothing to do
    (tmp_path / "fer2013_mini_xception.onnx").write_bytes(b"built before")
    monkeypatch.setattr(modelfiles, "find_model",
                        lambda name, explicit=None: None if name == OUTPUT else tmp_path / name)
    assert main(["models", "fetch", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "already present" in out and f"mestudio models fetch {BUNDLE}" in out
