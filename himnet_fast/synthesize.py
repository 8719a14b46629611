"""Command line of the synthetic generator (the work is done by ``himnet_fast.data.synth_writer``).

    python -m himnet_fast.synthesize --like thumos14 --out DIR [--annotations DIR]
        [--dim D] [--seed S] [--videos N] [--layout packed|per_video] [--video-style X] [--rectified] [--quiet]

In Python use ``from himnet_fast.data import synthesize`` (the function).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from himnet_fast.data import synth_writer, synthesize
from himnet_fast.data.layouts import PACKED_LAYOUTS
from himnet_fast.data.synth_features import FeatureModel


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m himnet_fast.synthesize", description=synth_writer.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--like", choices=sorted(PACKED_LAYOUTS), default="thumos14")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--annotations", type=Path, help="real annotation folder to build on")
    parser.add_argument("--dim", type=int, default=2048, help="feature size D (even; default 2048)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos", type=int, help="number of videos (default: all)")
    parser.add_argument("--layout", choices=("packed", "per_video"), default="packed")
    parser.add_argument("--video-style", type=float, default=0.0,
                        help="each video's own look of its classes, as an SNR (FeatureModel.video_style; default 0)")
    parser.add_argument("--rectified", action="store_true",
                        help="clip every value at 0, as I3D's post-ReLU pooled features are (FeatureModel.rectified)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        out = synthesize(args.out, args.like, args.annotations, args.dim, args.seed, args.videos, args.layout,
                         model=FeatureModel(video_style=args.video_style, rectified=args.rectified), progress=not args.quiet)
    except ValueError as exc:  # DataFormatError included: name the file and the problem, no traceback
        parser.error(str(exc))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
