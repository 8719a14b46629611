"""GPU check of the post-processing ops: CUDA kernels vs the numpy reference, and timings.

Run on a machine with a CUDA device after building the extension there:
    MAX_JOBS=8 pip install --no-build-isolation --no-deps -e . && python bench/gpu_postprocess_report.py
(``--device cpu`` dry-runs the same script on the CPU kernels.)

Checks (exit status 1 on any mismatch):
  * proposals on random packed videos and on the 212 THUMOS14 test videos at their real
    lengths: the same (video, class, start, end) rows, scores within 1e-6;
  * batched (soft-)NMS, gaussian / linear / hard, offset 0 and 1, on random groups and on the
    THUMOS14 proposals: the same kept indices in the same order, scores within 1e-6
    (the decay uses the portable exp, so the bits should match exactly; the table says);
  * detect-like pipeline on the GPU (proposals + batched Soft-NMS) vs detect_videos(backend="reference").
Timings (CUDA-synchronized, best of several): the THUMOS14 pipeline on the GPU vs the native
CPU path, and single-group Soft-NMS for N = 1k, 10k, 50k (the CUDA kernel is one block per
group with a quadratic loop) vs the CPU sweep.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_postprocess import SOFT_NMS_SIZES, bench_config, soft_nms_inputs, thumos14_test_inputs  # noqa: E402

from himnet_fast.ops import postprocess as P  # noqa: E402
from himnet_fast.postprocess import detect_videos, select_video_classes  # noqa: E402
from himnet_fast.postprocess import synthetic_video_outputs  # noqa: E402
from himnet_fast.reference import postprocess as ref  # noqa: E402

FAILURES: list[str] = []
ROWS: list[tuple] = []
TIMINGS: list[str] = []


def check(name: str, same_ids: bool, max_err: float, exact: bool) -> None:
    ok = same_ids and max_err <= 1e-6
    ROWS.append((name, "ok" if ok else "MISMATCH", same_ids, f"{max_err:.1e}", exact))
    if not ok:
        FAILURES.append(name)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        best = min(best, time.perf_counter() - t)
    return best


def packed(att, cas):
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in att])]).astype(np.int64)
    return (torch.from_numpy(np.concatenate(att)), torch.from_numpy(np.concatenate(cas)), torch.from_numpy(offsets))


def compare_proposals(name, att, cas, offsets, rows, vs, dev):
    ids, sc = P.proposals(att.to(dev), cas.to(dev), offsets.to(dev), rows.to(dev), vs.to(dev), backend="cpp")
    want_ids, want_sc = P.proposals(att, cas, offsets, rows, vs, backend="reference")
    same = ids.shape == want_ids.shape and torch.equal(ids.cpu(), want_ids)
    err = float((sc.cpu() - want_sc).abs().max()) if same and len(sc) else (0.0 if same else float("inf"))
    check(name, same, err, same and torch.equal(sc.cpu(), want_sc))
    return want_ids, want_sc


def compare_nms(name, seg, scores, groups, dev, **kwargs):
    keep, kept = P.batched_soft_nms(seg.to(dev), scores.to(dev), groups.to(dev), backend="cpp", **kwargs)
    want_keep, want_kept = ref.batched_soft_nms_reference(seg.numpy(), scores.numpy(), groups.numpy(), **kwargs)
    same = np.array_equal(keep.cpu().numpy(), want_keep)
    err = float(np.abs(kept.cpu().numpy() - want_kept).max()) if same and len(want_kept) else (0.0 if same else float("inf"))
    check(name, same, err, same and np.array_equal(kept.cpu().numpy(), want_kept))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run of this script)")
    parser.add_argument("--out", default=None, help="folder for postprocess_table.txt (the printed summary)")
    parser.add_argument("--quick", action="store_true", help="leave out the N=50k Soft-NMS timing (a rerun)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (use --device cpu for a dry run)")
        return 2
    dev = torch.device(args.device)
    name_of_device = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu (dry run)"
    print(f"device: {name_of_device}; torch {torch.__version__}")
    rng = np.random.default_rng(0)

    # --- random inputs
    lengths = rng.integers(1, 600, 9)
    att, cas, offsets = packed(*synthetic_video_outputs(lengths, num_classes=6, seed=1))
    rows = torch.tensor([(v, c) for v in range(9) for c in range(7) if rng.random() < 0.3])
    vs = torch.from_numpy(rng.random(len(rows)))
    compare_proposals("proposals random float32", att, cas, offsets, rows, vs, dev)
    compare_proposals("proposals random float64", att.double(), cas.double(), offsets, rows, vs, dev)
    for method in ("gaussian", "linear", "hard"):
        for offset in (0, 1):
            n = 3000
            start = rng.uniform(0, 500, n)
            seg = torch.from_numpy(np.stack([start, start + rng.exponential(10, n)], 1))
            compare_nms(f"batched {method} offset={offset} random", seg, torch.from_numpy(rng.random(n)),
                        torch.from_numpy(rng.integers(0, 20, n)), dev, method=method, offset=offset,
                        iou_threshold=0.5, min_score=0.001)
            snippets = torch.floor(seg / 5)  # integer segments: ties, duplicates, touching ends
            compare_nms(f"batched {method} offset={offset} integer", snippets, torch.from_numpy(np.round(rng.random(n), 2)),
                        torch.from_numpy(rng.integers(0, 20, n)), dev, method=method, offset=offset)

    # --- THUMOS14 test set at real lengths
    inputs = thumos14_test_inputs()
    if inputs is not None:
        t_att, t_cas = inputs
        cfg = bench_config()
        att, cas, offsets = packed(t_att, t_cas)
        class_scores = P.video_scores(cas.to(dev), offsets.to(dev), cfg.r, backend="cpp")
        want_scores = P.video_scores(cas, offsets, cfg.r, backend="reference")
        same = class_scores.shape == want_scores.shape
        check("video_scores THUMOS14 (CPU kernel via CUDA inputs)", same,
              float((class_scores.cpu() - want_scores).abs().max()) if same else float("inf"),
              same and torch.equal(class_scores.cpu(), want_scores))
        sel, vscores = select_video_classes(want_scores.numpy(), cfg.class_threshold)
        sel, vscores = torch.from_numpy(sel), torch.from_numpy(vscores)
        ids, sc = compare_proposals("proposals THUMOS14 212 videos", att, cas, offsets, sel, vscores, dev)
        groups = ids[:, 0] * cas.shape[1] + ids[:, 1]
        for method in ("gaussian", "hard"):
            for offset in (0, 1):
                compare_nms(f"NMS THUMOS14 {method} offset={offset}", ids[:, 2:4].double(), sc, groups, dev,
                            method=method, offset=offset, min_score=0.0)

        def gpu_pipeline():
            i, s = P.proposals(att_d, cas_d, off_d, sel_d, vs_d, backend="cpp")
            return P.batched_soft_nms(i[:, 2:4].double(), s, i[:, 0] * cas_d.shape[1] + i[:, 1], min_score=0.0,
                                      backend="cpp")

        att_d, cas_d, off_d, sel_d, vs_d = (x.to(dev) for x in (att, cas, offsets, sel, vscores))
        t_gpu = timed(gpu_pipeline, 10)
        torch.set_num_threads(1)
        t_cpu = timed(lambda: detect_videos(t_att, t_cas, cfg, backend="cpp"), 5)
        t_ref = timed(lambda: detect_videos(t_att, t_cas, cfg, backend="reference"), 1)
        TIMINGS.append(f"THUMOS14 test set post-processing: reference {t_ref * 1e3:.0f} ms, native CPU (1 thread) "
                       f"{t_cpu * 1e3:.2f} ms, {dev.type} ops (proposals + batched Soft-NMS, inputs resident) "
                       f"{t_gpu * 1e3:.2f} ms")

    # --- Soft-NMS alone
    TIMINGS.append(f"Soft-NMS single group (gaussian): N, CPU sweep ms (1 thread), {dev.type} ms")
    for n in SOFT_NMS_SIZES:
        if args.quick and n > 10_000:
            continue
        seg, scores = soft_nms_inputs(n)
        if n <= 10_000:
            compare_nms(f"soft-NMS N={n}", seg, scores, torch.zeros(n, dtype=torch.int64), dev)
        seg_d, scores_d = seg.to(dev), scores.to(dev)
        t_dev = timed(lambda: P.soft_nms(seg_d, scores_d, backend="cpp"), 3 if n < 50_000 else 1)
        t_cpu = timed(lambda: P.soft_nms(seg, scores, backend="cpp"), 3)
        TIMINGS.append(f"  {n:>6} {t_cpu * 1e3:9.2f} {t_dev * 1e3:9.2f}")

    lines = TIMINGS + [f"{'check':<52} {'result':<9} {'same ids/order':<15} {'max |err|':<9} bit-exact"]
    lines += [f"{name:<52} {result:<9} {str(same):<15} {err:<9} {exact}" for name, result, same, err, exact in ROWS]
    lines.append(f"{len(ROWS) - len(FAILURES)}/{len(ROWS)} checks passed on {name_of_device}")
    print("\n" + "\n".join(lines))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "postprocess_table.txt").write_text("\n".join(lines) + "\n")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
