"""``mestudio bench tracking``: per-stage cost of face tracking + alignment.

Decodes ``single_face.mp4`` (640×360, 72 frames) once, then runs the tracker over the
decoded frames several times and reports milliseconds per frame for each stage —
detection amortised over the frames, as it runs every ``detect_every_s`` — and the
resulting frames/s. Target (ISSUE 2): >= 100 frames/s for tracking + alignment on a
2-core machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mestudio.shareddata import shared_data_dir, use_shared_models

HELP = "face tracking speed: ms per stage (decode, detect, landmarks, align) and frames/s"
TARGET_FPS = 100.0
VIDEO_NAME = "single_face.mp4"


def default_video() -> Path | None:
    """``single_face.mp4`` of the shared test data (:mod:`mestudio.shareddata`), or None."""
    data = shared_data_dir()
    p = data / "video" / VIDEO_NAME if data else None
    return p if p is not None and p.is_file() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", type=Path, default=None,
                        help=f"video to track (default: {VIDEO_NAME} of the shared test data)")
    parser.add_argument("--passes", type=int, default=5,
                        help="times the tracker runs over the decoded frames (default 5)")


def run(args: argparse.Namespace) -> dict:

    video = args.video or default_video()
    if video is None or not Path(video).is_file():
        print(f"{VIDEO_NAME} not found: set MESTUDIO_TEST_DATA to the shared data folder "
              "(with data/video/) or pass --video PATH")
        return {"error": f"{VIDEO_NAME} not found"}
    use_shared_models()

    from mestudio.capture import open_source
    from mestudio.face.tracker import FaceTracker

    frames = []
    with open_source(video) as src:
        t0 = time.perf_counter()
        for frame in src:
            frames.append(frame)
        decode_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(frames))
        w, h = src.size
    tracker = FaceTracker()
    tracker.update(frames[0])  # warm-up (first inference allocates)
    tracker.reset()
    stages = {"detect": 0.0, "landmarks": 0.0, "align": 0.0}
    total = 0.0
    n = found = 0
    detections_before = tracker.n_detections
    for _ in range(max(1, args.passes)):
        tracker.reset()
        for frame in frames:
            t0 = time.perf_counter()
            obs = tracker.update(frame)
            total += time.perf_counter() - t0
            for k in stages:
                stages[k] += tracker.timings_ms.get(k, 0.0)
            n += 1
            found += obs.face_found
    detections = tracker.n_detections - detections_before
    track_ms = total * 1e3 / n
    per = {k: v / n for k, v in stages.items()}
    other = max(0.0, track_ms - sum(per.values()))
    fps = 1e3 / track_ms if track_ms > 0 else float("inf")
    fps_with_decode = 1e3 / (track_ms + decode_ms)
    print(f"video {Path(video).name}: {len(frames)} frames {w}x{h}, {args.passes} passes; "
          f"{tracker.detector_name} + {tracker.landmark_count} landmarks; "
          f"{detections} detections for {n} frames")
    for line in tracker.degraded:
        print(f"degraded: {line}")
    print(f"{'stage':<28}{'ms/frame':>10}")
    rows = [("decode", decode_ms), ("detect (amortised)", per["detect"]),
            ("landmarks (LBF fit)", per["landmarks"]), ("align (smooth+warp)", per["align"]),
            ("other (checks, bookkeeping)", other), ("tracking + alignment", track_ms),
            ("total with decode", track_ms + decode_ms)]
    for name, ms in rows:
        print(f"{name:<28}{ms:>10.3f}")
    print(f"tracking + alignment: {fps:.0f} frames/s (target {TARGET_FPS:.0f}: "
          f"{fps / TARGET_FPS:.2f}x); with decoding: {fps_with_decode:.0f} frames/s "
          f"({fps_with_decode / TARGET_FPS:.2f}x); face in {100.0 * found / n:.0f}% of frames")
    print("(2 shared cores: figures are noisy)")
    return {"frames": len(frames), "size": [w, h], "decode_ms": decode_ms,
            "detect_ms": per["detect"], "landmarks_ms": per["landmarks"],
            "align_ms": per["align"], "other_ms": other, "track_ms": track_ms,
            "fps": fps, "fps_with_decode": fps_with_decode, "target_fps": TARGET_FPS,
            "ratio": fps / TARGET_FPS, "face_rate": found / n,
            "detections_per_frame": detections / n}
