"""GPU report of the fused losses: fused vs eager vs torch.compile, memory, bandwidth, top-k.

Run on a CUDA machine (bench/gpu_check.sh does)::

    python bench/gpu_losses_report.py --out OUT [--skip-compile] [--no-sweep]
    TRITON_INTERPRET=1 python bench/gpu_losses_report.py --out OUT --dry-run   # CPU: runs every code path

``--dry-run`` runs the whole script on the CPU (Triton interpreter, tiny shapes, wall-clock timer,
no torch.compile) to catch errors in the report itself before it spends device time.

For each shape (THUMOS14 (10, 560, 21), ActivityNet1.3 (10, 60, 201), large (64, 2048, 201)):
forward + backward time of the fused Triton op, the eager reference and torch.compile of the
reference (triton.testing.do_bench, median ms), their ratios, the extra peak memory of one
step (torch.cuda.max_memory_allocated above what was allocated before), and the largest
difference fused vs reference (terms, dS, dA). For the large shape also the achieved bandwidth
(the bytes the op must move: read S, A, labels; write dS, dA) over the fused time, as a fraction
of a measured device-to-device copy (2 x bytes / time of a 1 GiB ``copy_``), and the split of
the fused time into the top-k select, the forward loss kernel and the backward kernel.
Top-k: fused ``topk_mean`` fwd + bwd vs ``torch.topk(...).values.mean`` + backward.
A short sweep of the kernels' tile sizes (module constants) shows whether the defaults are best.
Writes OUT/losses.json and OUT/losses_table.txt; prints the table and the acceptance checks.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_losses import EQ11_WEIGHTS, SHAPES, loss_fn, make_inputs, torch_topk_mean  # noqa: E402

from himnet_fast import ops  # noqa: E402
from himnet_fast.reference import losses as R  # noqa: E402


DRY_RUN_SHAPES = {"thumos14": (2, 9, 5), "anet13": (2, 6, 7), "large": (3, 17, 6)}
COMPILE_SHAPES = ("thumos14", "large")  # the two acceptance shapes (compiling costs ~30 s each)
DEVICE = "cuda"


def do_bench(fn, grads=()) -> float:
    import triton.testing

    if DEVICE == "cpu":  # dry run: one timed call, the figure means nothing
        import time

        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, grad_to_none=list(grads), return_mode="median"))


def step(fn, S, A, labels, k):
    """The timed unit: loss forward, Eq. 11 weighting of the three terms, backward."""
    terms = fn(S, A, labels, k)
    sum(w * t for w, t in zip(EQ11_WEIGHTS, terms)).backward()
    return terms


def peak_mib(fn) -> float:
    """Extra peak memory of one call of ``fn`` (MiB above what was allocated before it)."""
    if DEVICE == "cpu":
        fn()
        return 0.0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def copy_bandwidth() -> float:
    """Device-to-device copy bandwidth in GB/s, counting the bytes read and written."""
    x = torch.empty(2**28 if DEVICE == "cuda" else 2**20, device=DEVICE, dtype=torch.float32)
    y = torch.empty_like(x)
    ms = do_bench(lambda: y.copy_(x))
    nbytes = 2 * x.numel() * 4
    return nbytes / (ms * 1e-3) / 1e9


def max_differences(S, A, labels, k) -> dict:
    """Largest |fused - reference| of each term and of dS, dA (relative to the reference's max),
    for both fused variants."""
    results = {}
    for impl in ("eager", "fused", "fused_fwdgrad"):
        S.grad, A.grad = None, None
        terms = step(loss_fn(impl), S, A, labels, k)
        results[impl] = ([float(t.detach()) for t in terms], S.grad.clone(), A.grad.clone())
    S.grad, A.grad = None, None
    ref_terms, ref_dS, ref_dA = results.pop("eager")
    out = {}
    for impl, (terms, dS, dA) in results.items():
        for name, a, e in zip(R.HiMNetLossTerms._fields, terms, ref_terms):
            out[f"{impl}.{name}"] = abs(a - e)
        out[f"{impl}.dS_rel"] = float((dS - ref_dS).abs().max() / ref_dS.abs().max().clamp_min(1e-30))
        out[f"{impl}.dA_rel"] = float((dA - ref_dA).abs().max() / ref_dA.abs().max().clamp_min(1e-30))
    return out


def loss_breakdown(S, A, labels, k) -> dict:
    """Fused time split: top-k select alone, forward (select + loss kernel), forward + backward."""
    from himnet_fast.kernels.topk_mean import topk_select

    fused = loss_fn("fused")
    Sd, Ad = S.detach(), A.detach()
    return {
        "select_ms": do_bench(lambda: topk_select(Sd, k, Ad)),
        "forward_ms": do_bench(lambda: fused(Sd, Ad, labels, k)),
        "forward_with_grad_ms": do_bench(lambda: loss_fn("fused_fwdgrad")(S, A, labels, k)),
        "fwd_bwd_ms": do_bench(lambda: step(fused, S, A, labels, k), (S, A)),
    }


LONG_TOPK_SHAPE = {"cuda": (8, 16384, 21), "cpu": (2, 40, 3)}


def topk_chunked_path(B: int, T: int, K: int) -> dict:
    """Top-k fwd + bwd where a column does not fit one register tile (the select kernel's
    chunked loop; on the dry run the tile is shrunk to force it), vs torch.topk + mean."""
    from himnet_fast.kernels import topk_mean

    S = make_inputs(B, T, K, device=DEVICE)[0].detach().requires_grad_()
    k = max(1, T // 8)
    default = topk_mean.SELECT_TILE_ELEMS
    if DEVICE == "cpu":
        topk_mean.SELECT_TILE_ELEMS = 16
    try:
        assert not topk_mean.select_config(T, K, B)[2], "the chunked path is not taken"
        fused = lambda x: ops.topk_mean(x, k, backend="triton", check_values=False)  # noqa: E731
        out = {"shape": f"{B},{T},{K}",
               "max_diff": float((fused(S) - torch_topk_mean(S, k)).abs().max()),
               "fused": do_bench(lambda: fused(S).sum().backward(), (S,)),
               "torch_topk": do_bench(lambda: torch_topk_mean(S, k).sum().backward(), (S,))}
    finally:
        topk_mean.SELECT_TILE_ELEMS = default
    out["ratio"] = out["torch_topk"] / out["fused"]
    return out


def host_overhead(fn, grads, repeats: int = 50) -> dict:
    """Host time per call (perf_counter over ``repeats`` calls, one sync at the end) next to the
    device time of the same calls (CUDA events): where the first exceeds the second, the step
    is bound by Python and launch overhead, not by the kernels. Prints the profiler's top CPU
    entries on CUDA (into this step's log)."""
    import time

    def run():
        for g in grads:
            g.grad = None
        fn()

    for _ in range(3):
        run()
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    t0 = time.perf_counter()
    for _ in range(repeats):
        run()
    host_ms = (time.perf_counter() - t0) * 1e3 / repeats
    out = {"host_ms": host_ms}
    if DEVICE == "cuda":
        end.record()
        torch.cuda.synchronize()
        out["events_ms"] = start.elapsed_time(end) / repeats
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                run()
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=20))
    return out


def tile_sweep(S, A, labels, k) -> dict:
    """Fused fwd + bwd time for a few tile sizes of each kernel (the other at its default)."""
    from himnet_fast.kernels import himnet_loss, topk_mean

    fused = loss_fn("fused")
    result = {}
    for module, name, values in ((topk_mean, "SELECT_TILE_ELEMS", (2048, 4096, 8192)),
                                 (himnet_loss, "ROW_TILE_ELEMS", (256, 512, 1024))):
        default = getattr(module, name)
        for v in values:
            setattr(module, name, v)
            try:
                result[f"{module.__name__.rsplit('.', 1)[-1]}.{name}={v}"] = do_bench(
                    lambda: step(fused, S, A, labels, k), (S, A))
            finally:
                setattr(module, name, default)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_out"))
    parser.add_argument("--skip-compile", action="store_true", help="leave out torch.compile (minutes of compiling)")
    parser.add_argument("--no-sweep", action="store_true", help="leave out the tile-size sweep")
    parser.add_argument("--dry-run", action="store_true", help="CPU + Triton interpreter, tiny shapes (see above)")
    args = parser.parse_args(argv)
    global DEVICE
    shapes = SHAPES
    if args.dry_run:
        DEVICE, shapes, args.skip_compile = "cpu", DRY_RUN_SHAPES, True
    elif not torch.cuda.is_available():
        print("gpu_losses_report: needs a CUDA device", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run)", "torch": torch.__version__, "shapes": {}}
    import triton

    report["triton"] = triton.__version__
    report["copy_GBps"] = copy_bw = copy_bandwidth()
    lines = [f"{report['device']}  torch {torch.__version__}  triton {triton.__version__}  copy {copy_bw:.0f} GB/s",
             f"{'shape':<24}{'impl':<15}{'fwd+bwd ms':>11}{'x fused':>9}{'peak MiB':>10}"]
    impls = ("fused", "fused_fwdgrad", "eager") + (() if args.skip_compile else ("compile",))
    for name, (B, T, K) in shapes.items():
        S, A, labels, k = make_inputs(B, T, K, device=DEVICE)
        entry = {"B": B, "T": T, "K": K, "k": k, "max_diff": max_differences(S, A, labels, k)}
        for impl in impls:
            if impl == "compile" and name not in COMPILE_SHAPES:
                continue
            fn = loss_fn(impl) if impl != "compile" else torch.compile(R.himnet_losses_reference, dynamic=False)
            try:
                step(fn, S, A, labels, k)  # warm-up / compile
                ms = do_bench(lambda: step(fn, S, A, labels, k), (S, A))
                S.grad, A.grad = None, None
                mem = peak_mib(lambda: step(fn, S, A, labels, k))
            except Exception as exc:  # a compile failure is reported, not fatal
                entry[impl] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                lines.append(f"{name:<24}{impl:<15}{'error':>11}")
                continue
            entry[impl] = {"ms": ms, "peak_MiB": mem}
        fused_ms = entry["fused"]["ms"]
        entry["best_fused"] = min(("fused", "fused_fwdgrad"), key=lambda i: entry[i]["ms"])
        for impl in impls:
            if "ms" in entry.get(impl, {}):
                entry[impl]["ratio_vs_fused"] = entry[impl]["ms"] / fused_ms
                lines.append(f"{f'{name} {B},{T},{K}':<24}{impl:<15}{entry[impl]['ms']:>11.3f}"
                             f"{entry[impl]['ratio_vs_fused']:>9.2f}{entry[impl]['peak_MiB']:>10.1f}")
        lines.append(f"{'':<24}max |diff| vs reference: " + " ".join(
            f"{key.replace('fused_fwdgrad', 'fwdgrad')} {v:.1e}" for key, v in entry["max_diff"].items()))
        ST = S.detach().clone().requires_grad_()
        topk = {}
        for impl, fn in (("fused", lambda x: ops.topk_mean(x, k, backend="triton", check_values=False)),
                         ("torch_topk", lambda x: torch_topk_mean(x, k))):
            topk[impl] = do_bench(lambda: fn(ST).sum().backward(), (ST,))
        topk["ratio"] = topk["torch_topk"] / topk["fused"]
        entry["topk"] = topk
        lines.append(f"{'':<24}topk fwd+bwd: fused {topk['fused']:.3f} ms, torch.topk {topk['torch_topk']:.3f} ms "
                     f"({topk['ratio']:.2f}x)")
        if name == "large":
            nbytes = (2 * S.numel() * S.element_size() + 2 * A.numel() * A.element_size()
                      + labels.numel() * labels.element_size())
            entry["bytes"] = nbytes
            entry["achieved_GBps"] = nbytes / (entry[entry["best_fused"]]["ms"] * 1e-3) / 1e9
            entry["fraction_of_copy"] = entry["achieved_GBps"] / copy_bw
            entry["breakdown"] = loss_breakdown(S, A, labels, k)
            b = entry["breakdown"]
            lines.append(f"{'':<24}bandwidth ({entry['best_fused']}) {entry['achieved_GBps']:.0f} GB/s = "
                         f"{entry['fraction_of_copy']:.0%} of copy; "
                         f"select {b['select_ms']:.3f} ms, forward {b['forward_ms']:.3f} ms, "
                         f"fwd+bwd {b['fwd_bwd_ms']:.3f} ms, "
                         f"forward writing dS {b['forward_with_grad_ms']:.3f} ms")
        if name == "thumos14":
            entry["host"] = host = host_overhead(lambda: step(loss_fn("fused"), S, A, labels, k), (S, A))
            lines.append(f"{'':<24}fused step: host {host['host_ms']:.3f} ms per call, device span "
                         f"{host.get('events_ms', float('nan')):.3f} ms per call (back-to-back, one sync)")
        if not args.no_sweep and name in ("thumos14", "large"):
            entry["tile_sweep_ms"] = sweep = tile_sweep(S, A, labels, k)
            lines.append(f"{'':<24}tiles: " + ", ".join(f"{key.split('.', 1)[0]} {key.rsplit('=', 1)[1]}: {v:.3f}"
                                                         for key, v in sweep.items()))
        report["shapes"][name] = entry
        # Written after every shape: a step killed at its time limit still leaves its figures.
        (args.out / "losses.json").write_text(json.dumps(report, indent=2))
        (args.out / "losses_table.txt").write_text("\n".join(lines) + "\n")
        S = A = labels = ST = None  # free the device memory before the next shape
        if DEVICE == "cuda":
            torch.cuda.empty_cache()

    report["topk_chunked"] = chunked = topk_chunked_path(*LONG_TOPK_SHAPE[DEVICE])
    lines.append(f"topk chunked path (B,T,K={chunked['shape']}, T > one register tile): fused {chunked['fused']:.3f} ms, "
                 f"torch.topk {chunked['torch_topk']:.3f} ms ({chunked['ratio']:.2f}x), "
                 f"max |diff| gamma {chunked['max_diff']:.1e}")
    (args.out / "losses.json").write_text(json.dumps(report, indent=2))
    th, lg = report["shapes"]["thumos14"], report["shapes"]["large"]

    def speedup(entry, impl):  # impl time over the best fused time
        return entry.get(impl, {}).get("ms", 0.0) / entry[entry["best_fused"]]["ms"]

    checks = {
        f"thumos14 fused ({th['best_fused']}) >= 8x eager": speedup(th, "eager") >= 8,
        f"thumos14 fused ({th['best_fused']}) >= 2x compile": speedup(th, "compile") >= 2,
        f"large ({lg['best_fused']}) >= 60% of copy bandwidth": lg["fraction_of_copy"] >= 0.6,
        "topk >= 3x torch.topk (all shapes)": all(e["topk"]["ratio"] >= 3 for e in report["shapes"].values()),
        "fused peak memory < reference (all shapes, both variants)": all(
            e[i]["peak_MiB"] < e["eager"]["peak_MiB"] for e in report["shapes"].values()
            for i in ("fused", "fused_fwdgrad")),
    }
    report["acceptance"] = checks
    lines += [f"{'PASS' if ok else 'FAIL'}  {what}" for what, ok in checks.items()]
    table = "\n".join(lines)
    print(table)
    (args.out / "losses_table.txt").write_text(table + "\n")
    (args.out / "losses.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
