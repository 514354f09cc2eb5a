"""``mestudio synth``: write a synthetic micro-expression clip and its ground truth.

Examples::

    mestudio synth --out synth30                       # astronaut, 10 s at 30 fps
    mestudio synth --out synth100 --fps 100 --duration 20 --seed 3
    mestudio synth --out mine --face me.jpg --frames   # PNG frames instead of clip.mp4
    mestudio synth --out talk --face talk.mp4          # inject on top of a face video

Writes ``DIR/clip.mp4`` (or ``DIR/frames/``) and ``DIR/truth.json`` (onset/apex/offset
frames and seconds, kind, class, AUs, amplitude of every planted event).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mestudio.errors import ConfigError
from mestudio.progress import add_progress_argument, show_progress

NAME = "synth"
HELP = "write a synthetic clip with planted micro-expressions (video or frames + truth.json)"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        size = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    if min(size) < 32:
        raise argparse.ArgumentTypeError("size must be at least 32x32")
    return size


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="output folder (created): clip.mp4 or frames/, and truth.json")
    parser.add_argument("--fps", type=float, default=None,
                        help="frames per second, any value >= 5 (default: 30, or the frame "
                             "rate of a --face video)")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S",
                        help="clip length in seconds (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--face", type=Path, metavar="IMAGE_OR_VIDEO",
                        help="face photo or video to animate (default: scikit-image's astronaut)")
    parser.add_argument("--frames", action="store_true",
                        help="write lossless PNG frames instead of clip.mp4")
    parser.add_argument("--size", type=_size, metavar="WxH",
                        help="frame size; a photo is re-framed around the face "
                             "(default: 640x480 for the astronaut, else the face's own size)")
    parser.add_argument("--micro", type=int, metavar="N",
                        help="number of micro-expressions (default: one per 2.5 s)")
    parser.add_argument("--macro", type=int, metavar="N",
                        help="number of macro-expressions (default: one per 20 s)")
    parser.add_argument("--blinks", type=int, metavar="N",
                        help="number of blinks (default: one per 6 s)")
    parser.add_argument("--amplitude", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="micro amplitude range, fraction of face width (default 0.01 0.03)")
    parser.add_argument("--no-distractors", action="store_true",
                        help="no head motion, illumination drift, noise, blinks or macros")
    add_progress_argument(parser)


def run(args: argparse.Namespace) -> int:
    import time

    from mestudio.errors import SourceError
    from mestudio.synth import synthesize_clip, write_clip

    if args.face is not None and not args.face.is_file():
        what = "is a folder, not a file" if args.face.is_dir() else "does not exist"
        raise SourceError(f"--face {args.face} {what}; give a face photo (jpg/png) or a video")
    if args.duration <= 0:
        raise ConfigError(f"--duration must be > 0 seconds, got {args.duration}")
    amplitude = tuple(args.amplitude) if args.amplitude else None
    if amplitude is not None and not 0 < amplitude[0] <= amplitude[1] < 0.2:
        raise ConfigError("--amplitude needs 0 < MIN <= MAX < 0.2 (fractions of face width)")
    t0 = time.perf_counter()
    clip = synthesize_clip(args.face, fps=args.fps, duration_s=args.duration, seed=args.seed,
                           size=args.size, n_micro=args.micro, n_macro=args.macro,
                           n_blinks=args.blinks, amplitude=amplitude,
                           distractors=not args.no_distractors)
    media = write_clip(clip, args.out, video=not args.frames, progress=show_progress(args))
    counts = clip.truth()["counts"]
    w, h = clip.size
    print(f"wrote {media} ({clip.n_frames} frames {w}x{h} at {clip.fps:g} fps, "
          f"{counts['micro']} micro, {counts['macro']} macro, {counts['blink']} blinks) and "
          f"{Path(args.out) / 'truth.json'} in {time.perf_counter() - t0:.1f} s")
    return 0
