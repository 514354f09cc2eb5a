"""Class sets: mapping files (shipped and the user's), --min-class-samples, and what the
report says about them (issue 14)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from mestudio.errors import DatasetError
from mestudio.training.cliargs import add_dataset_arguments, load_class_set
from mestudio.training.datasets.base import (
    ClassMapping,
    drop_small_classes,
    load_mapping,
    shipped_mappings,
)
from training.fixtures import CodedRow, build_casme2, make_casme2_rows

MAPPING = """# test: three classes of the MEGC rule plus fear
classes = ["negative", "positive", "surprise", "fear"]

[labels]
disgust = "negative"
happiness = "positive"
surprise = "surprise"
fear = "fear"

[labels.casme2]
repression = "negative"
"""


def _release(tmp_path):
    rows = make_casme2_rows(n_subjects=3, per_class=1, length=5,
                            classes=("happiness", "disgust", "repression", "surprise", "others"))
    rows.append(CodedRow("01", "EP09_01", 10, 12, 14, "4", "fear"))
    return build_casme2(tmp_path / "CASME2", layout="cropped", rows=rows, quirks=False, size=48)


def _args(root, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    return parser.parse_args(["--dataset", "casme2", "--root", str(root), *extra])


def test_shipped_mapping_files_load_and_name_their_source():
    shipped = shipped_mappings()
    for name in ("casme2-5class", "samm-5class", "megc2019-3class", "m3enet-table1-casme2",
                 "m3enet-table1-samm", "m3enet-table1-casme", "m3enet-table1-mmew",
                 "m3enet-table1-casme-sq"):
        assert name in shipped
        m = load_mapping(name)
        assert m.name == name and len(m.sha256) == 64 and m.description
        assert set(m.table("casme2").values()) | set(m.table("samm").values()) <= set(m.classes)
    assert "Table 1 and Table 2 disagree" in load_mapping("m3enet-table1-samm").description
    megc = load_mapping("megc2019-3class")
    assert megc.map("repression", "casme2") == "negative"
    assert megc.map("contempt", "samm") == "negative" and megc.map("other", "samm") is None
    assert megc.map("negative", "smic") == "negative"            # the composite's own labels
    assert load_mapping("casme2-5class").classes == ("happiness", "disgust", "surprise",
                                                     "repression", "others")


def test_mapping_file_sets_the_classes_and_min_class_samples_drops_small_ones(tmp_path):
    release = _release(tmp_path)
    path = tmp_path / "my-set.toml"
    path.write_text(MAPPING)
    cs = load_class_set(_args(release.root, "--mapping", str(path)))
    counts = {c: sum(s.label == c for s in cs.samples) for c in cs.classes}
    # others is not named by the file: left out; repression -> negative for casme2 only
    assert counts == {"negative": 6, "positive": 3, "surprise": 3, "fear": 1}
    assert cs.mapping.name == "my-set" and cs.dropped == {}
    info = cs.describe()
    assert info["mapping_source"] == "my-set.toml" and len(info["mapping_sha256"]) == 64

    cs2 = load_class_set(_args(release.root, "--mapping", str(path), "--min-class-samples",
                               "2"))
    assert cs2.classes == ["negative", "positive", "surprise"]
    assert cs2.dropped == {"fear": 1}
    assert len(cs2.samples) == 12 and {s.label for s in cs2.samples} == set(cs2.classes)
    assert cs2.describe()["min_class_samples"] == 2
    # the built-in names still work
    five = load_class_set(_args(release.root, "--mapping", "5class"))
    assert five.classes == ["happiness", "disgust", "surprise", "repression", "others"]
    assert len(five.samples) == 15 and five.mapping.source == "built-in casme2 5class"
    auto = load_class_set(_args(release.root))
    assert auto.classes == five.classes and auto.mapping.sha256 == five.mapping.sha256


def test_bad_mapping_files_are_user_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('classes = ["a", "b"]\n[labels]\nx = "c"\n')
    with pytest.raises(DatasetError, match="not in classes"):
        load_mapping(bad)
    bad.write_text('classes = "a"\n')
    with pytest.raises(DatasetError, match="classes"):
        load_mapping(bad)
    with pytest.raises(DatasetError, match="unknown class mapping"):
        load_mapping("no-such-mapping")
    m = ClassMapping("t", ("a", "b", "c"), {"x": "a", "y": "b", "z": "c"})
    assert m.restricted(["a", "c"]).map("y", "d") is None


def test_drop_small_classes_keeps_two_classes_at_least(tmp_path):
    release = _release(tmp_path)
    samples = load_class_set(_args(release.root, "--mapping", "5class")).samples
    with pytest.raises(DatasetError, match="leaves 0"):
        drop_small_classes(samples, ["happiness", "disgust"], 10)


def test_train_report_states_the_class_set_settings_and_command(tmp_path, capsys):
    from mestudio.cli import main

    torch.set_num_threads(1)
    release = _release(tmp_path)
    path = tmp_path / "my-set.toml"
    path.write_text(MAPPING)
    out = tmp_path / "run"
    args = ["train", "--dataset", "casme2", "--root", str(release.root), "--mapping", str(path),
            "--min-class-samples", "2", "--epochs", "1", "--batch-size", "16", "--set",
            "aug_mode=offline", "--set", "focal_alpha=paper", "--ablation", "no-flow",
            "--align", "none", "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--prepare-workers", "1", "--threads", "1", "--no-final"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3,235,355 parameters" in text and "flow removed" in text  # K = 3
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == ["negative", "positive", "surprise"]
    assert report["class_set"]["dropped_classes"] == {"fear": 1}
    assert report["class_set"]["mapping_sha256"] == load_mapping(path).sha256
    assert report["model_info"]["parameters"] == 3_235_355
    assert report["model_info"]["removed_streams"] == ["flow"]
    assert "--min-class-samples" in report["command"]
    md = (out / "report.md").read_text()
    for fact in ("**protocol:** LOSO", "my-set (my-set.toml, SHA-256 ",
                 "**min-class-samples:** 2 — dropped: fear (1 samples)", "**seeds:** 1",
                 "**epochs:** 1", "offline, stage maps, x5", "alpha paper (1 - n_t/N)",
                 "**command:** `mestudio train"):
        assert fact in md, fact
    assert "Table 3 layout" not in md and "## UF1 and UAR" in md
