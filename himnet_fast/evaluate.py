"""Command line: detection mAP of an ActivityNet results file, exactly as the official evaluator.

    python -m himnet_fast.evaluate --gt GT --pred PRED.json [--tiou LIST] [--subset test]
        [--protocol thumos14|anet13] [--drop-ambiguous FILE] [--unknown-videos POLICY]
        [--json] [--out FILE]

GT is an ActivityNet ground-truth JSON or a Thumos14reduced annotation folder. Prints a
table (AP per class and threshold in percent, mAP, the protocol's averages) or, with
``--json``, the JSON of :meth:`DetectionResult.to_json`. Bad input exits with status 2 and
a message naming the file, video and key.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

import numpy as np

from himnet_fast.evaluation import PROTOCOLS, detection_map
from himnet_fast.evaluation.io import UNKNOWN_VIDEO_POLICIES


def parse_tious(text: str) -> np.ndarray:
    """``"0.1,0.3,0.5"`` or ``"start:stop:step"`` (inclusive, built with np.linspace like the
    protocols, so ``0.1:0.7:0.1`` is bit-identical to THUMOS14_TIOUS)."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            return np.linspace(start, stop, int(round((stop - start) / step)) + 1)
        return np.array([float(x) for x in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tiou: expected 'a,b,c' or 'start:stop:step', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m himnet_fast.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--gt", required=True, help="ground-truth JSON or Thumos14reduced annotation folder")
    p.add_argument("--pred", required=True, help="predictions in the ActivityNet results format")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="thumos14",
                   help="default thresholds and reported averages (default: thumos14)")
    p.add_argument("--tiou", type=parse_tious, default=None, help="thresholds, overriding the protocol's")
    p.add_argument("--subset", default="test", help="ground-truth subset to evaluate ('all' = every video)")
    p.add_argument("--drop-ambiguous", metavar="FILE", default=None,
                   help="remove predictions overlapping the segments of this Ambiguous_test.txt")
    p.add_argument("--unknown-videos", choices=UNKNOWN_VIDEO_POLICIES, default="false_positive",
                   help="predictions on videos without ground truth (default: false_positive, as official)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--out", default=None, help="also write the JSON result to this file")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; returns the exit status (0, or 2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        result = detection_map(args.gt, args.pred, args.tiou, None if args.subset == "all" else args.subset,
                               protocol=args.protocol, ambiguous=args.drop_ambiguous,
                               unknown_videos=args.unknown_videos)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    payload = result.to_json()
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(payload, fh, indent=1)
    print(json.dumps(payload, indent=1) if args.json else result.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
