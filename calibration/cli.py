"""``python -m calibration``: compare the synthetic market with real recordings, and refit the generator defaults.

Bad input (a missing or corrupt recording, an unknown symbol) is one line on stderr naming the file, exit code 2.
Recording real streams, archive ingest and the calibration file (issue 12) are not built yet.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from calibration.recordings import RecordingError, read_recording
from replay.synthetic.builder import DEFAULT_POINTS_PER_CANDLE

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m calibration", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    c = sub.add_parser("compare", help="real vs synthetic figures for one recording",
                       description="Rebuild a real recording's 1m candles, run the generator on them and print real vs "
                                   "synthetic side by side (trades, sizes, timing, spread, depth, buy share, leak "
                                   "probes). Recordings: Binance USD-M L2 lines or a Bybit v5 public capture.")
    c.add_argument("--recording", required=True, type=Path, help="the real recording to judge")
    c.add_argument("--symbol", help="symbol inside a multi-symbol capture (default: every symbol in it)")
    c.add_argument("--fit-on", nargs="+", type=Path, default=[], metavar="FILE",
                   help="first fit the generator's levels and shapes on these recordings (default: project defaults)")
    c.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    c.add_argument("--points", type=int, default=DEFAULT_POINTS_PER_CANDLE,
                   help=f"book updates per candle (default {DEFAULT_POINTS_PER_CANDLE}, as replay); trades: per second")
    c.add_argument("--json", action="store_true", help="print one JSON object per symbol instead of the table")
    f = sub.add_parser("fit-defaults", help="refit replay/synthetic/defaults.json from ../shared/data",
                       description="Fit the generator defaults on the real recordings of the shared data folder.")
    from calibration.defaults_fit import DEFAULT_OUT, DEFAULT_SHARED

    f.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared data folder (default {DEFAULT_SHARED})")
    f.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file (default: the project's defaults.json)")
    return ap


def _fit_params(files: list[Path], points: int) -> tuple[object, tuple[str, ...]]:
    from calibration.fit import fit_levels, refine_by_simulation, values
    from replay.synthetic import GeneratorParams

    base = GeneratorParams.load_defaults()
    if not files:
        return base, ()
    recs = [r for f in files for r in read_recording(f)]
    E = {k: getattr(base, k) for k in ("fill_notional_elasticity", "depth_density_elasticity")}
    params = base.calibrate_from_ws_stats(values(fit_levels(recs, E)))
    params = refine_by_simulation(params, recs, points_per_candle=points)
    return params, tuple(f"{f.name}" for f in files)


def _compare(args: argparse.Namespace) -> int:
    from calibration.compare import compare_recording, table

    if args.points < 4:
        raise RecordingError(f"--points must be >= 4, got {args.points}")
    params, fitted_on = _fit_params(args.fit_on, args.points)
    recs = read_recording(args.recording, args.symbol)
    done = 0
    for rec in recs:
        try:
            cmp = compare_recording(rec, params, seed=args.seed, points_per_candle=args.points,  # type: ignore[arg-type]
                                    fitted_on=fitted_on)
        except ValueError as exc:  # e.g. no complete minute in a short capture
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        done += 1
        if args.json:
            print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                              for k, v in cmp.flat().items()}))
        else:
            print(table(cmp))
            print()
    if not done:
        print(f"error: {args.recording.name}: nothing to compare (no symbol has a complete minute of trades)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.cmd is None:
        ap.print_help()
        return EXIT_BAD_INPUT
    try:
        if args.cmd == "compare":
            return _compare(args)
        from calibration.defaults_fit import write_defaults

        out = write_defaults(args.shared, args.out)
        print(f"wrote {out}")
        return 0
    except (RecordingError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
