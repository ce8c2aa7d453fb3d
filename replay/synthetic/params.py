"""Generator coefficients: fitted defaults (``defaults.json``) plus a few design choices, adjustable by calibration."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULTS_PATH = Path(__file__).resolve().parent / "defaults.json"


@dataclass(frozen=True)
class GeneratorParams:
    """All coefficients of the synthetic market. Fitted values come from defaults.json (see fit_defaults.py);
    the ``# design`` ones are choices of this generator, not measurements."""

    # trades (Binance spot 1m)
    trade_count_elasticity: float
    trade_count_resid_sigma: float
    taker_buy_intercept: float
    taker_buy_slope: float
    extreme_order_logit_intercept: float
    extreme_order_logit_slope: float
    # book and prints (Binance USD-M L2)
    spread_multiple_pmf: tuple[float, ...]
    spread_range_ratio: float
    depth_profile_rel: tuple[float, ...]
    depth_size_log_sigma: float
    touch_size_log_sigma: float
    level1_size_per_minute_volume: float
    level_gap_bps: float
    imbalance_std: float
    imbalance_momentum_coef: float
    top10_depth_share: float
    trade_size_body_sigma: float
    large_print_share: float
    large_print_threshold_mult: float
    large_print_pareto_alpha: float
    real_trades_per_min_at_mean: float
    # design
    target_prints_per_point: float = 1.5  # emitted prints per intrabar point at the symbol's mean volume
    max_prints_per_point: int = 6  # cap on emitted prints per point (each print aggregates real trades)
    bridge_noise: float = 0.35  # Brownian-bridge step σ as a share of the candle range per √K
    imbalance_levels: int = 3  # top ranks per side carrying the causal imbalance factor
    level_refresh_s: float = 300.0  # each level's size is redrawn once per this period (staggered per price)
    depth_log_clip: float = 2.5  # |z| cap of the per-level lognormal size noise
    max_pareto_mult: float = 200.0  # cap of a large print's size over the large threshold
    scale_halflife_min: float = 240.0  # half-life (candles) of the causal volume/range scales (scales.py)

    def __post_init__(self) -> None:
        pmf = self.spread_multiple_pmf
        if len(pmf) == 0 or min(pmf) < 0 or sum(pmf) <= 0:
            raise ValueError(f"spread_multiple_pmf must be non-negative with a positive sum: {pmf}")
        for name in ("level1_size_per_minute_volume", "level_gap_bps", "large_print_threshold_mult",
                     "large_print_pareto_alpha", "target_prints_per_point", "real_trades_per_min_at_mean",
                     "level_refresh_s", "top10_depth_share", "scale_halflife_min"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GeneratorParams.{name} must be > 0, got {getattr(self, name)}")
        for name in ("trade_count_resid_sigma", "depth_size_log_sigma", "touch_size_log_sigma",
                     "trade_size_body_sigma", "imbalance_std"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"GeneratorParams.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.large_print_share < 1:
            raise ValueError(f"large_print_share must be in [0, 1), got {self.large_print_share}")
        if self.max_prints_per_point < 1 or self.imbalance_levels < 1:
            raise ValueError("max_prints_per_point and imbalance_levels must be >= 1")

    # ---------------------------------------------------------------------------------------------- derived
    @property
    def deep_level_rel(self) -> float:
        """Median size of ranks ≥ 2 relative to level 1 (one flat value so a price move changes few levels)."""
        return float(sorted(self.depth_profile_rel[1:])[len(self.depth_profile_rel[1:]) // 2])

    @property
    def imbalance_log_sigma(self) -> float:
        """σ of the log factor on the top ranks that reproduces the fitted 50-level imbalance std.

        With a share f of the side's depth in the modulated ranks, (B−A)/(B+A) ≈ f·tanh(ρ/2), so ρ's σ is
        2·atanh(std/f) (capped); a first-order approximation, stated as such.
        """
        f = self.modulated_depth_share
        return 2.0 * math.atanh(min(0.9, self.imbalance_std / f))

    @property
    def modulated_depth_share(self) -> float:
        d = self.deep_level_rel
        m = self.imbalance_levels
        return (1.0 + (m - 1) * d) / (1.0 + 49 * d)

    # ------------------------------------------------------------------------------------------------- load
    @classmethod
    def load_defaults(cls, path: Path = DEFAULTS_PATH) -> GeneratorParams:
        return _load(path)

    @classmethod
    def from_fitted(cls, fitted: Mapping[str, Any]) -> GeneratorParams:
        """Build from the ``{"name": {"value": ...}}`` mapping written by fit_defaults."""
        def v(name: str) -> Any:
            try:
                return fitted[name]["value"]
            except KeyError:
                raise ValueError(f"defaults: missing fitted value {name!r} (re-run python -m "
                                 "replay.synthetic.fit_defaults)") from None

        real = v("trades_per_min_at_mean_volume")
        return cls(
            trade_count_elasticity=float(v("trade_count_elasticity")),
            trade_count_resid_sigma=float(v("trade_count_resid_sigma")),
            taker_buy_intercept=float(v("taker_buy_intercept")),
            taker_buy_slope=float(v("taker_buy_slope")),
            extreme_order_logit_intercept=float(v("extreme_order_logit_intercept")),
            extreme_order_logit_slope=float(v("extreme_order_logit_slope")),
            spread_multiple_pmf=tuple(float(x) for x in v("spread_multiple_pmf")),
            spread_range_ratio=float(v("spread_range_ratio")),
            depth_profile_rel=tuple(float(x) for x in v("depth_profile_rel")),
            depth_size_log_sigma=float(v("depth_size_log_sigma")),
            touch_size_log_sigma=float(v("touch_size_log_sigma")),
            level1_size_per_minute_volume=float(v("level1_size_per_minute_volume")),
            level_gap_bps=float(v("level_gap_bps")),
            imbalance_std=float(v("imbalance_std")),
            imbalance_momentum_coef=float(v("imbalance_momentum_coef")),
            top10_depth_share=float(v("top10_depth_share")),
            trade_size_body_sigma=float(v("trade_size_body_sigma")),
            large_print_share=float(v("large_print_share")),
            large_print_threshold_mult=float(v("large_print_threshold_mult")),
            large_print_pareto_alpha=float(v("large_print_pareto_alpha")),
            real_trades_per_min_at_mean=float(min(real.values()) if isinstance(real, Mapping) else real),
        )

    # ------------------------------------------------------------------------------------------ calibration
    def calibrate_from_ws_stats(self, stats: Mapping[str, Any]) -> GeneratorParams:
        """A copy with coefficients replaced by measured ones (live WS calibration file).

        Keys (all optional; unknown keys raise so a typo is never silently ignored; keys starting with ``_``
        are metadata and skipped):
        - spread model: ``spread_multiple_pmf`` (list, P(spread = j × modal), j = 1..), ``spread_range_ratio``
          (modal spread ticks / median 1m range ticks);
        - size distribution: ``trade_size_body_sigma`` (σ of log size below the large threshold);
        - large prints: ``large_print_share``, ``large_print_threshold_mult``, ``large_print_pareto_alpha``;
        - depth: ``depth_profile_rel`` (list, level 1 = 1), ``level1_size_per_minute_volume``,
          ``depth_size_log_sigma``, ``touch_size_log_sigma``, ``level_gap_bps``, ``imbalance_std``,
          ``imbalance_momentum_coef``;
        - trade intensity: ``trades_per_min_at_mean_volume`` (real trades/min at mean volume),
          ``trade_count_elasticity``, ``trade_count_resid_sigma``, ``target_prints_per_point``;
        - aggressor: ``taker_buy_intercept``, ``taker_buy_slope``.
        """
        names = {f.name for f in fields(self)} - {"real_trades_per_min_at_mean"}
        alias = {"trades_per_min_at_mean_volume": "real_trades_per_min_at_mean"}
        upd: dict[str, Any] = {}
        for key, val in stats.items():
            if key.startswith("_"):
                continue
            name = alias.get(key, key)
            if name not in names and name not in alias.values():
                raise ValueError(f"calibrate_from_ws_stats: unknown key {key!r}; known: {sorted(names | set(alias))}")
            if name in ("spread_multiple_pmf", "depth_profile_rel"):
                seq = tuple(float(x) for x in val)
                if name == "spread_multiple_pmf" and sum(seq) > 0:
                    seq = tuple(x / sum(seq) for x in seq)
                upd[name] = seq
            elif name in ("max_prints_per_point", "imbalance_levels"):
                upd[name] = int(val)
            else:
                fv = float(val)
                if not math.isfinite(fv):
                    raise ValueError(f"calibrate_from_ws_stats: {key}={val!r} is not finite")
                upd[name] = fv
        return replace(self, **upd)


@lru_cache(maxsize=4)
def _load(path: Path) -> GeneratorParams:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: generator defaults missing; run python -m replay.synthetic.fit_defaults") \
            from None
    return GeneratorParams.from_fitted(data)
