"""``python -m calibration``: record real streams, reduce them, fit and judge the synthetic market generator.

Bad input (a missing or corrupt recording, an unknown symbol) is one line on stderr naming the file, exit code 2.
Commands: ``record`` (live public WS → sessions within the disk budget), ``ingest`` (archives, trade CSVs, captures,
L2 recordings → aggregates), ``stats`` (aggregates → calibration.json), ``fit`` (calibration.json → generator
coefficients, judged before/after), ``compare`` (one recording's fidelity table), ``fit-defaults``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from calibration.recordings import RecordingError, read_recording
from replay.synthetic.builder import DEFAULT_POINTS_PER_CANDLE

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m calibration", description=__doc__.splitlines()[0].replace("``", ""))
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
    _add_pipeline(sub)
    f = sub.add_parser("fit-defaults", help="refit replay/synthetic/defaults.json from ../shared/data",
                       description="Fit the generator defaults on the real recordings of the shared data folder.")
    from calibration.defaults_fit import DEFAULT_OUT, DEFAULT_SHARED

    f.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared data folder (default {DEFAULT_SHARED})")
    f.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file (default: the project's defaults.json)")
    return ap


def _add_pipeline(sub: Any) -> None:
    settings_opt = {"type": Path, "metavar": "FILE", "help": "settings TOML (calibration section)"}
    root_opt = {"type": Path, "metavar": "DIR", "help": "calibration folder (default: calibration.calibration_path)"}
    r = sub.add_parser("record", help="record live public streams into a session (within the disk budget)",
                       description="Record orderbook + publicTrade frames of SYMBOLS from Bybit's public WS with the "
                                   "live collector, as received (capture format, crash-safe), then reduce the session "
                                   "to its aggregate. Old sessions' raw frames rotate out under "
                                   "calibration.disk_budget_gb; aggregates stay.")
    r.add_argument("--symbols", help="comma-separated (default: calibration.calibration_ws_symbols)")
    r.add_argument("--minutes", type=float, help="how long (default: calibration.calibration_ws_duration_min)")
    r.add_argument("--url", help="public WS URL (default: websocket.ws_public_linear; tests use a local server)")
    r.add_argument("--settings", **settings_opt)
    r.add_argument("--root", **root_opt)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    i = sub.add_parser("ingest", help="aggregate real files: ob200/ob500 archives, trade CSVs, captures, L2",
                       description="Reduce each FILE to its aggregate under ROOT/ingested/ (nothing is written when "
                                   "any file is bad). Formats: Bybit *_ob200/_ob500.data.zip, Bybit public trade "
                                   "archive CSV (.csv/.csv.gz), the capture format (.ndjson.gz), Binance USD-M L2.")
    i.add_argument("files", nargs="+", type=Path, metavar="FILE")
    i.add_argument("--settings", **settings_opt)
    i.add_argument("--root", **root_opt)
    i.add_argument("--no-fit", action="store_true", help="skip fitting generator coefficients per file")
    st = sub.add_parser("stats", help="aggregates → calibration.json",
                        description="Pool every session and ingested aggregate under ROOT into calibration.json.")
    st.add_argument("--settings", **settings_opt)
    st.add_argument("--root", **root_opt)
    st.add_argument("--out", type=Path, help="output (default ROOT/calibration.json)")
    ft = sub.add_parser("fit", help="calibration.json → generator coefficients, fidelity before/after",
                        description="Apply calibration.json's generator block (generator coefficients only, never "
                                    "trading settings), print the fidelity table before (project defaults) and after "
                                    "on the --judge recordings, and with calibration.auto_correct_param or --write "
                                    "write the coefficients for `python -m replay --calibration FILE`.")
    ft.add_argument("--calibration", type=Path, help="calibration file (default ROOT/calibration.json)")
    ft.add_argument("--judge", nargs="*", type=Path, default=[], metavar="FILE",
                    help="recordings to judge on (use ones the calibration was not fitted on)")
    ft.add_argument("--symbol", help="only this symbol of the judged recordings")
    ft.add_argument("--write", nargs="?", const=True, default=None, metavar="FILE",
                    help="write the coefficients (default file ROOT/generator.json)")
    ft.add_argument("--settings", **settings_opt)
    ft.add_argument("--root", **root_opt)
    ft.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    ft.add_argument("--points", type=int, default=DEFAULT_POINTS_PER_CANDLE, help="book updates per candle")


def _root(args: argparse.Namespace) -> tuple[Any, Path]:
    from settings import load_settings

    settings = load_settings(args.settings)
    return settings, Path(args.root or settings.calibration.calibration_path)


def _record(args: argparse.Namespace) -> int:
    import asyncio

    from loguru import logger

    from calibration.record import record_session

    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{time:HH:mm:ss} {level}: {message}")
    settings, root = _root(args)
    cal = settings.calibration
    symbols = [s.strip().upper() for s in (args.symbols or ",".join(cal.calibration_ws_symbols)).split(",")
               if s.strip()]
    if not symbols:
        raise RecordingError("--symbols names no symbol")
    minutes = cal.calibration_ws_duration_min if args.minutes is None else args.minutes
    if not (minutes > 0 and math.isfinite(minutes)):
        raise RecordingError(f"--minutes must be a positive number, got {args.minutes}")
    res = asyncio.run(record_session(settings, symbols, minutes, url=args.url, root=root,
                                     progress=not args.no_progress and sys.stderr.isatty()))
    print(f"session {res.folder}: {res.frames} frames, {res.bytes} bytes in {res.seconds:.0f} s "
          f"(stopped by {res.stopped_by})")
    print(f"aggregate: {res.aggregate or 'none (no symbol with usable trades or book)'}")
    for p in res.rotated:
        print(f"disk budget: deleted {p} (its aggregate stays)")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from calibration.ingest import ingest

    _, root = _root(args)
    for out in ingest(list(args.files), root / "ingested", fit=not args.no_fit, progress=sys.stderr.isatty()):
        doc = json.loads(out.read_text())
        syms = ", ".join(f"{s['symbol']} ({'+'.join(k for k in ('trades', 'book', 'generator') if k in s)})"
                         for s in doc["symbols"])
        print(f"{doc['file']} → {out}: {syms}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from calibration.calibfile import write_calibration

    _, root = _root(args)
    out = args.out or root / "calibration.json"
    doc = write_calibration(root, out)
    print(f"wrote {out} ({out.stat().st_size:,} bytes): {len(doc['sources'])} sources, symbols "
          f"{', '.join(sorted(doc['symbols']))}; generator fitted on "
          f"{', '.join(doc.get('_generator_fitted_on', [])) or 'nothing (no source with trades + book + a minute)'}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from calibration.fitcmd import run_fit, summary, table, write_generator_file

    settings, root = _root(args)
    cal_file = args.calibration or root / "calibration.json"
    if not cal_file.is_file():
        raise RecordingError(f"{cal_file}: no such calibration file (run `python -m calibration stats` first)")
    from calibration.calibfile import generator_block

    doc = json.loads(cal_file.read_text(encoding="utf-8"))
    generator_block(doc, str(cal_file))  # fails early, naming the file, when nothing could be fitted
    recs = [r for f in args.judge for r in read_recording(f, args.symbol)]
    seen = {s.split(":")[0] for s in doc.get("_generator_fitted_on", [])}
    for r in recs:
        if r.source in seen:
            print(f"note: {r.source} is one of the recordings the calibration was fitted on: not a held-out test",
                  file=sys.stderr)
    for before, after in run_fit(cal_file, recs, seed=args.seed, points=args.points):
        print("BEFORE (project defaults)")
        print(table(before))
        print("AFTER (calibrated)")
        print(table(after))
        print(summary(before, after))
        print()
    if not recs:
        print("no --judge recording: nothing to compare (the coefficients are still checked and can be written)")
    if args.write or settings.calibration.auto_correct_param:
        from replay.synthetic import GeneratorParams

        GeneratorParams.load_defaults().calibrate_from_ws_stats(doc)  # validates every coefficient
        out = Path(args.write) if isinstance(args.write, str) else root / "generator.json"
        write_generator_file(doc, cal_file, out)
        print(f"wrote {out}: use it with `python -m replay --calibration {out}`")
    return 0


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
        if args.cmd in ("record", "ingest", "stats", "fit"):
            return {"record": _record, "ingest": _ingest, "stats": _stats, "fit": _fit}[args.cmd](args)
        from calibration.defaults_fit import write_defaults

        out = write_defaults(args.shared, args.out)
        print(f"wrote {out}")
        return 0
    except (RecordingError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
