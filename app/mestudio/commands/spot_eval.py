"""``mestudio spot-eval``: MEGC spotting scores of events.json files against truth.json files.

Usage::

    mestudio spot-eval --pred a/events.json --truth a/truth.json [--pred b/events.json --truth b/truth.json ...]
    mestudio spot-eval --pred events.json --truth truth.json --iou 0.5 --json scores.json

Pairs are taken in order (the k-th ``--pred`` with the k-th ``--truth``). TP/FP/FN are
summed over the pairs, then precision, recall and F1 are printed for micro and macro
expressions separately (and for both kinds together, kind ignored). A score whose
denominator is zero (precision without predictions, recall without truth, all three when a
kind has neither) is printed ``n/a`` and written as JSON ``null``. Blinks in the truth are
not spotting targets. A missing or malformed file exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

NAME = "spot-eval"
HELP = "score spotted events (events.json) against synthetic truth (truth.json): P, R, F1"

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", type=Path, action="append", required=True, metavar="EVENTS",
                        help="events.json written by 'mestudio analyze' (repeat for more videos)")
    parser.add_argument("--truth", type=Path, action="append", required=True, metavar="TRUTH",
                        help="truth.json written by 'mestudio synth' (one per --pred, same order)")
    parser.add_argument("--iou", type=float, default=0.5,
                        help="minimum interval IoU for a true positive (default 0.5, MEGC)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the scores to this JSON file")


def run(args: argparse.Namespace) -> int:
    from mestudio.errors import ConfigError
    from mestudio.events_io import read_events_json, read_truth_json
    from mestudio.fsutil import atomic_write_text
    from mestudio.spotting.metrics import format_score, score_by_kind

    if len(args.pred) != len(args.truth):
        raise ConfigError(f"got {len(args.pred)} --pred but {len(args.truth)} --truth files; "
                          "give one truth.json per events.json, in the same order")
    if not 0.0 < args.iou <= 1.0:
        raise ConfigError(f"--iou must be in (0, 1], got {args.iou}")
    pairs = []
    per_video = []
    for pred_path, truth_path in zip(args.pred, args.truth, strict=True):
        events, meta = read_events_json(pred_path)
        truth, tmeta = read_truth_json(truth_path)
        pf, tf = meta.get("fps"), tmeta.get("fps")
        if pf and tf and abs(float(pf) - float(tf)) > 0.01 * float(tf):
            log.warning("%s is at %.3g fps but %s at %.3g fps: frame indices may not match",
                        pred_path, float(pf), truth_path, float(tf))
        pairs.append((events, truth))
        per_video.append((pred_path, score_by_kind([(events, truth)], iou=args.iou)))
    scores = score_by_kind(pairs, iou=args.iou)

    if len(pairs) > 1:
        print(f"{'video':<40} {'kind':<6} {'TP':>4} {'FP':>4} {'FN':>4} {'F1':>6}")
        for path, sc in per_video:
            for kind in ("micro", "macro"):
                s = sc[kind]
                print(f"{str(path)[-40:]:<40} {kind:<6} {s.tp:>4} {s.fp:>4} {s.fn:>4} "
                      f"{format_score(s.f1)}")
        print()
    print(f"MEGC spotting, IoU >= {args.iou:g}, {len(pairs)} video(s)")
    print(f"{'kind':<6} {'TP':>4} {'FP':>4} {'FN':>4} {'P':>6} {'R':>6} {'F1':>6}")
    for kind in ("micro", "macro", "all"):
        s = scores[kind]
        print(f"{kind:<6} {s.tp:>4} {s.fp:>4} {s.fn:>4} {format_score(s.precision)} "
              f"{format_score(s.recall)} {format_score(s.f1)}")
    if args.json is not None:
        doc = {"iou": args.iou, "videos": [str(p) for p in args.pred],
               "scores": {k: v.as_dict() for k, v in scores.items()}}
        atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
    return 0
