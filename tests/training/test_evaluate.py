"""``mestudio evaluate`` on the MEGC2019 fixture release (synthetic faces, no alignment)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mestudio.cli import main
from mestudio.training.evaluation import FOLD_FILE_NAMES, fold_file_stem
from training.fixtures import build_megc2019

# The fixture's faces are small drawings the face tracker need not find: they are used as
# aligned crops (--align none), as the other training tests do.
COMMON = ["--dataset", "megc2019", "--align", "none", "--workers", "1", "--no-progress"]


@pytest.fixture(scope="module")
def megc(tmp_path_factory):
    return build_megc2019(tmp_path_factory.mktemp("megc"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def published(shared_dir: Path) -> Path:
    folder = shared_dir / "models" / "ststnet_megc2019"
    if not (folder / "sub01.pth").is_file():
        pytest.skip("the published STSTNet fold files are not in the shared data")
    return folder


@pytest.fixture(scope="module")
def ensemble(published: Path, tmp_path_factory) -> Path:
    from mestudio.inference.ststnet_import import import_ststnet

    out = tmp_path_factory.mktemp("model") / "three_folds.onnx"
    return import_ststnet([published / f for f in ("sub01.pth", "s01.pth", "006.pth")], out)


def test_fold_file_names_are_the_authors(published: Path):
    from mestudio.training.datasets.base import Sample

    def stem(dataset: str, subject: str) -> str:
        return fold_file_stem(Sample(id="x", dataset=dataset, subject=subject, label="",
                                     onset=0, apex=0, offset=0, frame_paths=[], fps=1.0, aus="",
                                     native_label="", frames=[]))

    assert stem("casme2", "01") == "sub01" and stem("samm", "006") == "006"
    assert stem("smic", "s1") == "s01" and stem("mmew", "S07") == "S07"
    names = {p.stem for p in published.glob("*.pth")}
    assert len(names) == 68
    # every published file is one of the three naming patterns
    patterns = {k: v.split("{")[0] for k, v in FOLD_FILE_NAMES.items()}
    counts = {"casme2": 0, "samm": 0, "smic": 0}
    for n in names:
        kind = "casme2" if n.startswith(patterns["casme2"]) else \
            "smic" if n.startswith("s") else "samm"
        counts[kind] += 1
    assert counts == {"casme2": 24, "samm": 28, "smic": 16}


def test_evaluate_model_prints_the_figures(megc, cache, ensemble, tmp_path, capsys):
    out = tmp_path / "figures.json"
    code = main(["evaluate", "--model", str(ensemble), "--root", str(megc.root),
                 "--cache", str(cache), "--out", str(out), *COMMON])
    text = capsys.readouterr().out
    assert code == 0, text
    for name in ("accuracy", "UF1", "UAR", "confusion"):
        assert name in text
    doc = json.loads(out.read_text())
    assert doc["classes"] == ["negative", "positive", "surprise"]
    confusion = np.array(doc["confusion"])
    assert confusion.shape == (3, 3)
    assert confusion.sum() == doc["n"] == megc.expected["samples"] == 15
    assert confusion.sum(axis=1).tolist() == [8, 4, 3]
    assert doc["no_inputs"] == {} and doc["class_not_in_model"] == {}
    assert len({p["id"] for p in doc["predictions"]}) == 15
    for key in ("accuracy", "uf1", "uar"):
        assert 0.0 <= doc[key] <= 1.0
    rows = [line for line in text.splitlines() if line.startswith(("negative", "positive",
                                                                   "surprise"))]
    assert [int(v) for v in rows[0].split()[1:]] == confusion[0].tolist()


def test_evaluate_folds_scores_each_subject_with_its_own_fold(megc, cache, published,
                                                               tmp_path, capsys):
    import torch

    from mestudio.nets.ststnet_fg2019 import load_published_weights
    from mestudio.preprocess import ststnet_megc2019_config
    from mestudio.training.datasets import get_dataset
    from mestudio.training.features import FeatureSpec, sample_inputs

    samples = {s.id: s for s in get_dataset("megc2019").load(megc.root)}
    stems = sorted({fold_file_stem(s) for s in samples.values()})
    assert "032" in stems and "sub01" in stems and "s01" in stems
    # Each fixture subject gets ANOTHER subject's published file under its own name (so a
    # file is found by its name, not its content); SAMM 032 gets none; 037 has no samples.
    donors = sorted(p.name for p in published.glob("*.pth"))[-len(stems):]
    folds = tmp_path / "folds"
    folds.mkdir()
    for stem, donor in zip(stems, donors, strict=True):
        if stem != "032":
            shutil.copy(published / donor, folds / f"{stem}.pth")
    shutil.copy(published / "037.pth", folds / "037.pth")

    out = tmp_path / "folds.json"
    code = main(["evaluate", "--folds", str(folds), "--root", str(megc.root),
                 "--cache", str(cache), "--out", str(out), *COMMON])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "UF1" in text and "0.7209" in text and "0.7250" in text
    assert "10 of 11 subjects have a fold file" in text
    assert "samm/032 (1)" in text and "037.pth" in text
    doc = json.loads(out.read_text())
    assert doc["folds"]["subjects_without_fold"] == {"samm/032": 1}
    assert doc["folds"]["folds_without_samples"] == ["037.pth"]
    scored = {p["id"]: p for p in doc["predictions"]}
    assert len(scored) == doc["n"] == 14 == np.array(doc["confusion"]).sum()
    assert "samm/032/032_3_1" not in scored
    for sid, p in scored.items():
        assert p["scored_by"] == f"{fold_file_stem(samples[sid])}.pth"

    # the probabilities are those of the subject's own fold (not another fold's)
    spec = FeatureSpec(kind="keyframes", preprocess=ststnet_megc2019_config().to_metadata(),
                       align="none", align_size=128)
    for sid in ("casme2/01/EP02_01f", "smic/s2/s2_sur_01"):
        inputs = sample_inputs(samples[sid], spec)
        flow = torch.from_numpy(inputs["flow"])[None]
        probs = {}
        for name in (scored[sid]["scored_by"], "037.pth"):
            with torch.no_grad():
                net = load_published_weights(folds / name)
                probs[name] = torch.softmax(net(flow, None), 1)[0].numpy()
        own = probs[scored[sid]["scored_by"]]
        assert np.allclose(scored[sid]["probs"], own, atol=1e-4)
        assert not np.allclose(probs["037.pth"], own, atol=1e-3)


def _as_clip_model(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose metadata says it takes clip inputs (another input kind)."""
    import onnx

    from mestudio.inference import contract

    proto = onnx.load(str(src))
    for prop in proto.metadata_props:
        if prop.key == contract.PREFIX + "input_kind":
            prop.value = contract.encode_metadata({"input_kind": "clip"})[prop.key]
    onnx.save(proto, str(dst))
    return dst


def test_evaluate_errors_are_one_line_exit_2(megc, ensemble, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "CASME2-coding-20190701.xlsx").write_text("not a workbook")
    clip = _as_clip_model(ensemble, tmp_path / "clip.onnx")
    cases = [
        ["--model", str(ensemble), "--dataset", "casme2", "--root", str(broken)],  # bad sheet
        ["--model", str(clip), "--root", str(megc.root)],                      # other kind
        ["--model", str(ensemble), "--root", str(tmp_path / "nowhere")],        # bad root
        ["--root", str(megc.root)],                                            # no model
        ["--model", str(ensemble), "--folds", str(tmp_path), "--root", str(megc.root)],
        ["--model", str(megc.sheet), "--root", str(megc.root)],                # not a model
        ["--folds", str(tmp_path), "--root", str(megc.root)],                  # no .pth files
    ]
    for args in cases:
        code = main(["evaluate", *COMMON, *args, "--cache", str(tmp_path / "c")])
        captured = capsys.readouterr()
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert code == 2, (args, captured)
        assert len(lines) == 1 and lines[0].startswith("mestudio evaluate: error: "), lines
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["evaluate", "--model", str(ensemble), "--root", str(empty),
                 "--cache", str(tmp_path / "c"), *COMMON])
    assert code == 2
    assert "none of CASME II, SAMM, SMIC-HS" in capsys.readouterr().err
