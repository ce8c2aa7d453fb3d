"""Results on disk and the apply/approve flow: presets, the parameter overlay, proposals, backups and the audit log.

Files (``R`` = ``backtest.report_path``/optimization, default ``logs/backtest/optimization``):

- ``R/{study}/preset_{target}.toml``: the best parameters as a settings TOML (every field that differs from the
  defaults, so it reproduces the trial exactly with ``python -m replay --settings FILE``), metrics in the header.
- the **overlay** (default ``config/overlay.toml``, ``--overlay`` to change): the bot's tuned parameters, OPTIMIZABLE
  fields only, itself a valid settings TOML. :func:`settings_with_overlay` is how a bot or a run applies it; it goes
  through ``apply_optimizer_params``, so a FIXED field in an overlay is refused, never applied.
- ``R/proposals/{id}.json``: one per ``apply`` call (status pending / applied / rejected / approved).
- ``{overlay}.bak-{stamp}``: the previous overlay, kept before every write; ``overlay_audit.jsonl`` next to the
  overlay: one JSON line per decision (who/what/when, old and new values, the improvement that justified it).

Writes are atomic: a temporary file in the same folder, fsync, then ``os.replace``.

**Improvement** (the figure ``auto_apply_threshold_improvement`` is compared with): the out-of-sample score of the
proposal against the out-of-sample score of the current parameters on the same window,
``(oos_new - oos_current) / max(|oos_current|, 1 bps/day)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from settings import Settings
from settings.search import apply_optimizer_params, fixed_fields, search_space
from settings.toml_text import flatten, to_toml

DEFAULT_OVERLAY = Path("config/overlay.toml")
_NOT_IN_PRESETS = frozenset({"backtest.report_path"})  # where a run writes is the caller's, not the preset's
MIN_BASE_SCORE = 1.0  # bps/day: the improvement's denominator floor, so a near-zero baseline cannot make it explode


# ------------------------------------------------------------------------------------------------------- TOML
def non_default(settings: Settings) -> dict[str, Any]:
    """Every field of ``settings`` that differs from ``Settings()`` defaults (secrets never included)."""
    base = flatten(Settings.model_validate({}).snapshot_dict())
    mine = flatten(settings.snapshot_dict())
    return {k: v for k, v in mine.items() if base.get(k) != v and k not in _NOT_IN_PRESETS}


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_preset(path: Path, settings: Settings, metrics_text: str) -> None:
    atomic_write(path, to_toml(non_default(settings), header=metrics_text))


# ---------------------------------------------------------------------------------------------------- overlay
def read_overlay(path: Path) -> dict[str, Any]:
    """The overlay's parameters as dotted paths ({} when there is none); a FIXED or unknown field raises."""
    if not path.exists():
        return {}
    from settings.model import read_toml

    flat = flatten(read_toml(path))
    fixed = sorted(set(flat) & fixed_fields(Settings))
    if fixed:
        raise ValueError(f"overlay {path} sets FIXED field(s) {', '.join(fixed)}; an overlay holds tuned parameters "
                         f"only")
    unknown = sorted(set(flat) - set(search_space(Settings)))
    if unknown:
        raise ValueError(f"overlay {path} sets {', '.join(unknown)}, which are not OPTIMIZABLE settings fields")
    return flat


def overlay_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else None


def settings_with_overlay(settings: Settings, path: Path) -> Settings:
    """``settings`` with the overlay's tuned parameters applied (FIXED fields refused)."""
    flat = read_overlay(path)
    return apply_optimizer_params(settings, flat) if flat else settings


def audit_path(overlay: Path) -> Path:
    return overlay.with_name(f"{overlay.stem}_audit.jsonl")


def _audit(overlay: Path, record: Mapping[str, Any]) -> None:
    line = json.dumps({"ts": datetime.now(UTC).isoformat(timespec="seconds"), **record}, sort_keys=True,
                      default=str)
    p = audit_path(overlay)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_overlay(overlay: Path, params: Mapping[str, Any], base: Settings, *, reason: Mapping[str, Any]) -> Path:
    """Merge ``params`` into the overlay atomically, after a backup, and append an audit line.

    The merged overlay is validated on ``base`` through ``apply_optimizer_params`` first: a FIXED field or an invalid
    combination raises before anything is written.
    """
    old = read_overlay(overlay)
    merged = old | dict(params)
    apply_optimizer_params(base, merged)
    backup = None
    if overlay.exists():
        backup = overlay.with_name(f"{overlay.name}.bak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}")
        backup.write_bytes(overlay.read_bytes())
    header = f"parameter overlay written by python -m replay {reason.get('action', 'apply')}\n" \
             f"proposal {reason.get('proposal')} from study {reason.get('study')} ({reason.get('target')})"
    atomic_write(overlay, to_toml(merged, header=header))
    _audit(overlay, {**reason, "overlay": str(overlay), "backup": str(backup) if backup else None,
                     "old": {k: old.get(k) for k in params}, "new": dict(params)})
    return overlay


# -------------------------------------------------------------------------------------------------- proposals
def improvement(oos_new: float, oos_current: float) -> float:
    return (oos_new - oos_current) / max(abs(oos_current), MIN_BASE_SCORE)


def _proposals(root: Path) -> Path:
    p = root / "proposals"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _new_id(root: Path) -> str:
    nums = [int(p.stem) for p in _proposals(root).glob("*.json") if p.stem.isdigit()]
    return f"{max(nums, default=0) + 1:04d}"


def load_result(root: Path, study: str, target: str | None) -> tuple[str, dict[str, Any]]:
    path = root / study / "result.json"
    if not path.exists():
        raise FileNotFoundError(f"no result for study {study!r} ({path}); run python -m replay optimize first")
    targets = json.loads(path.read_text())["targets"]
    if target is None:
        if len(targets) != 1:
            raise ValueError(f"study {study!r} has targets {', '.join(targets)}: name one with --target (the overlay "
                             f"is one parameter set for the whole bot)")
        target = next(iter(targets))
    if target not in targets:
        raise ValueError(f"study {study!r} has no target {target!r} (it has {', '.join(targets)})")
    return target, targets[target]


def propose(root: Path, study: str, target: str | None, settings: Settings, overlay: Path) -> dict[str, Any]:
    """``apply STUDY``: decide on the study's best parameters; returns the proposal (its ``status`` says what
    happened: rejected below the threshold, pending manual approval, or applied)."""
    target, res = load_result(root, study, target)
    bt = settings.backtest
    if res.get("best") is None:
        raise ValueError(f"study {study!r} ({target}) found no feasible parameters; nothing to apply")
    if res.get("overlay_hash") != overlay_hash(overlay):
        raise ValueError(f"overlay {overlay} changed since study {study!r} measured the current parameters; re-run "
                         f"the optimization against the current overlay")
    oos_new, oos_cur = res["best"]["oos"]["score"], res["current"]["oos"]["score"]
    imp = improvement(oos_new, oos_cur)
    pid = _new_id(root)
    proposal = {"id": pid, "study": study, "target": target, "params": res["best"]["params"],
                "oos_score_new": oos_new, "oos_score_current": oos_cur, "improvement": round(imp, 6),
                "threshold": bt.auto_apply_threshold_improvement, "overlay": str(overlay),
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "deflated_sharpe": res.get("overfitting", {}).get("dsr")}
    reason = {"proposal": pid, "study": study, "target": target, "improvement": round(imp, 6),
              "threshold": bt.auto_apply_threshold_improvement}
    if imp < bt.auto_apply_threshold_improvement:
        proposal["status"] = "rejected"
        proposal["why"] = (f"out-of-sample improvement {imp:.1%} is below auto_apply_threshold_improvement "
                           f"{bt.auto_apply_threshold_improvement:.1%}")
        _audit(overlay, {**reason, "action": "reject", "why": proposal["why"]})
    elif bt.require_manual_approval:
        proposal["status"] = "pending"
        proposal["why"] = f"require_manual_approval: run python -m replay approve {pid}"
        _audit(overlay, {**reason, "action": "propose", "why": proposal["why"]})
    else:
        write_overlay(overlay, proposal["params"], settings, reason={**reason, "action": "apply"})
        proposal["status"] = "applied"
    write_json(_proposals(root) / f"{pid}.json", proposal)
    return proposal


def approve(root: Path, pid: str, settings: Settings) -> dict[str, Any]:
    """``approve ID``: apply a pending proposal (and only a pending one)."""
    path = _proposals(root) / f"{pid}.json"
    if not path.exists():
        known = sorted(p.stem for p in _proposals(root).glob("*.json"))
        raise FileNotFoundError(f"no proposal {pid!r} (known: {', '.join(known) or 'none'})")
    proposal = json.loads(path.read_text())
    if proposal["status"] != "pending":
        raise ValueError(f"proposal {pid} is {proposal['status']}, not pending; nothing to approve")
    overlay = Path(proposal["overlay"])
    write_overlay(overlay, proposal["params"], settings,
                  reason={"proposal": pid, "study": proposal["study"], "target": proposal["target"],
                          "improvement": proposal["improvement"], "threshold": proposal["threshold"],
                          "action": "approve"})
    proposal["status"] = "approved"
    proposal["approved_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(path, proposal)
    return proposal
