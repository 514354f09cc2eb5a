"""``mestudio models list | fetch [NAME...] | verify``: the model files and where they are."""

from __future__ import annotations

import argparse
from pathlib import Path

from mestudio.commands._progress import add_progress_argument, show_progress

NAME = "models"
HELP = "list, download (fetch) or verify the model files (YuNet, LBF landmarks)"


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="each model file: found where, or missing; licence")
    fetch = sub.add_parser("fetch", help="download missing model files (the program's only "
                                         "network access); progress bar, hash check")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help="manifest file names (default: every missing one)")
    fetch.add_argument("--dest", type=Path, default=None,
                       help="folder to store them in (default: the user cache folder)")
    fetch.add_argument("--force", action="store_true", help="download even when found")
    add_progress_argument(fetch)
    sub.add_parser("verify", help="check found files against the manifest's sha256 "
                                  "(or load them when no hash is published)")


def _entries(names: list[str]):  # noqa: ANN202 - list[ManifestEntry]
    from mestudio import modelfiles
    from mestudio.errors import ModelFileError

    entries = modelfiles.load_manifest()
    if not names:
        return entries
    by_name = {e.name: e for e in entries}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ModelFileError(f"unknown model {', '.join(unknown)}; the manifest lists "
                             f"{', '.join(by_name)}")
    return [by_name[n] for n in names]


def _list() -> int:
    from mestudio import modelfiles

    rows = []
    for e in modelfiles.load_manifest():
        path = modelfiles.find_model(e.name)
        rows.append((e.name, e.role, f"found: {path}" if path else
                     f"MISSING (fallback: {e.fallback})", e.licence))
    width = max(len(r[0]) for r in rows)
    for name, role, where, licence in rows:
        print(f"{name:<{width}}  {role:<9}  {licence:<5}  {where}")
    print("search order: " + " -> ".join(str(d) for d in modelfiles.search_dirs()))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from mestudio import modelfiles

    entries = _entries(args.names)
    todo = [e for e in entries if args.force or modelfiles.find_model(e.name) is None]
    if not todo:
        print("every model file is already present (use --force to download again)")
        return 0
    for e in todo:
        if not e.url:
            print(f"{e.name}: no download URL in the manifest; skipped")
            continue
        path = modelfiles.fetch(e, args.dest, progress=show_progress(args))
        print(f"{e.name}: saved to {path}")
    return 0


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
    return 1 if bad else 0


def run(args: argparse.Namespace) -> int:
    action = args.action or "list"
    if action == "list":
        return _list()
    if action == "fetch":
        return _fetch(args)
    return _verify()
