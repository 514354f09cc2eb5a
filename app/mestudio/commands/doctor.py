"""``mestudio doctor``: what this installation can do, and what it falls back on."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys

NAME = "doctor"
HELP = "check the installation: versions, ONNX Runtime providers, torch device, cameras, " \
       "model files, degraded modes"

_DISTRIBUTIONS = (("numpy", ("numpy",)),
                  ("opencv", ("opencv-contrib-python-headless", "opencv-contrib-python",
                              "opencv-python-headless", "opencv-python")),
                  ("torch", ("torch",)),
                  ("onnxruntime", ("onnxruntime-gpu", "onnxruntime")),
                  ("onnx", ("onnx",)),
                  ("PySide6", ("PySide6-Essentials", "PySide6")),
                  ("pyqtgraph", ("pyqtgraph",)))


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cameras", action="store_true", help="skip probing cameras")


def _version(dists: tuple[str, ...]) -> str:
    for d in dists:
        try:
            return f"{importlib.metadata.version(d)} ({d})"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "NOT INSTALLED"


def _section(title: str) -> None:
    print(f"\n{title}")


def _onnx_models() -> tuple[list[str], bool]:
    """Lines about the recognition models found in every model folder (the default first),
    and whether the application falls back to the synthetic demo model."""
    from mestudio.inference.catalog import find_models

    lines = []
    entries = find_models()
    for e in entries:
        lines.append(f"{e.path.name}: {e.badge}{' (default)' if e.default else ''} — "
                     f"{e.description} [{e.path.parent}]")
    default = next((e for e in entries if e.default), None)
    from mestudio.inference.engine import EXPRESSION_MODEL_NAME
    from mestudio.modelfiles import find_model

    expression = find_model(EXPRESSION_MODEL_NAME)
    lines.append(f"{EXPRESSION_MODEL_NAME}: expression model for macro events (FER2013) "
                 f"[{expression.parent}]" if expression is not None else
                 f"{EXPRESSION_MODEL_NAME}: missing — macro events are named by the "
                 "micro-expression model (get it: mestudio models fetch fer-expression)")
    return lines, default is None or default.synthetic


def run(args: argparse.Namespace) -> int:
    from mestudio import __version__, modelfiles
    from mestudio.errors import MestudioError

    print(f"mestudio {__version__} — doctor")
    _section("Versions")
    print(f"  python       {platform.python_version()} ({sys.executable})")
    for label, dists in _DISTRIBUTIONS:
        print(f"  {label:<12} {_version(dists)}")
    import cv2

    has_face = hasattr(cv2, "face")
    print(f"  cv2.face     {'available (opencv-contrib)' if has_face else 'MISSING: install opencv-contrib-python-headless'}")

    _section("ONNX Runtime")
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        print(f"  providers    {', '.join(providers)}")
        if "CUDAExecutionProvider" in providers:
            print("               (CUDA is listed by the package; it is used only when the CUDA "
                  "libraries load — the engine falls back to CPU otherwise)")
        from mestudio.flow import graph
        from mestudio.inference.providers import cuda_status

        packaged = len(list(graph.PACKAGED_DIR.glob("tvl1-*.onnx")))
        cached = len(list(graph.cache_dir().glob("tvl1-*.onnx")))
        print(f"  TV-L1        ONNX graphs: {packaged} packaged, {cached} built here "
              f"({graph.cache_dir()}); run on {'CUDA' if cuda_status()[0] else 'CPU'}")
    except ImportError:
        print("  onnxruntime is not installed: recognition is unavailable")

    _section("torch (training only)")
    try:
        import torch

        cuda = torch.cuda.is_available()
        device = f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu"
        print(f"  device       {device}; {torch.get_num_threads()} threads")
    except ImportError:
        print("  not installed: the application runs without it; training, export, importing "
              "published weights and evaluation need it: pip install 'mestudio[train]'")

    _section("Cameras (indices 0-3)")
    if args.no_cameras:
        print("  not probed (--no-cameras)")
    else:
        from mestudio.capture.camera import probe_cameras

        cams = probe_cameras(range(4), timeout_s=1.5)
        for index, (w, h) in cams:
            print(f"  camera {index}     opens, {w}x{h}")
        if not cams:
            print("  none found (live mode needs one; files, folders and the demo work)")

    _section("Model files")
    entries = modelfiles.load_manifest()
    found = {e.name: modelfiles.find_model(e.name) for e in entries}
    for e in entries:
        path = found[e.name]
        print(f"  {e.name:<34} "
              f"{'found: ' + str(path) if path else _missing_note(e, entries, found)}")
    print("  search order: " + " -> ".join(str(d) for d in modelfiles.search_dirs()))
    onnx_lines, synthetic = _onnx_models()
    _section("Recognition models")
    for line in onnx_lines or ["none found: spotting works, recognition is off"]:
        print(f"  {line}")
    if synthetic:
        from mestudio.inference.card import TRAIN_REAL_COMMAND

        print("  a model trained on real micro-expressions: mestudio models fetch "
              "ststnet-megc2019 (or, offline, mestudio import ststnet FOLDER)")
        print(f"  or train one on licensed data (e.g. CASME II): {TRAIN_REAL_COMMAND}")

    _section("Degraded modes")
    try:
        from mestudio.face.tracker import FaceTracker

        tracker = FaceTracker()
        lines = tracker.degraded
        print(f"  in use: {tracker.detector_name} face detector + "
              f"{tracker.landmark_count or 'no'} LBF landmarks")
    except MestudioError as exc:
        lines = [f"face tracker unusable: {exc}"]
    if not has_face:
        lines.append("OpenCV without the contrib 'face' module: no LBF landmarks")
    for line in lines or ["none"]:
        print(f"  {line}")
    return 0


def _missing_note(entry, entries: list, found: dict) -> str:  # noqa: ANN001 - ManifestEntry
    """``missing`` plus what happens without the file: optional when another file of the
    same role is found (the 68-point LBF model when the 5-point one is there)."""
    others = [e.name for e in entries if e.name != entry.name and e.role == entry.role
              and found.get(e.name) is not None]
    if others:
        return f"not installed (optional: {others[0]} is used; `mestudio models fetch " \
               f"{entry.name}` adds it)"
    fallback = f" -> {entry.fallback}" if entry.fallback else ""
    return f"missing{fallback}"
