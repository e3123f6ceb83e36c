"""Percentiles and the small summaries a bench report is made of. Pure functions: no I/O, no clock."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct` percentile with linear interpolation between closest ranks (numpy's default method).

    Interpolating matters for small samples: with 20 turns a nearest-rank P99 would just be the maximum.
    """
    if not values:
        return math.nan
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """count, P50/P95/P99 and max of durations given in seconds, reported in milliseconds."""
    summary: dict[str, float] = {"count": float(len(seconds))}
    millis = [value * 1000.0 for value in seconds]
    for pct in PERCENTILES:
        summary[f"p{pct}"] = round(percentile(millis, pct), 3) if millis else math.nan
    summary["max"] = round(max(millis), 3) if millis else math.nan
    return summary


def difference(through: Mapping[str, float], direct: Mapping[str, float]) -> dict[str, float]:
    """Per-percentile difference of two summaries: what the path under test adds on top of the direct path."""
    return {f"p{pct}": round(through[f"p{pct}"] - direct[f"p{pct}"], 3) for pct in PERCENTILES}


def median_of(values: Iterable[float]) -> float:
    """Median of repeated runs, ignoring runs that produced no figure (NaN)."""
    kept = [value for value in values if not math.isnan(value)]
    return statistics.median(kept) if kept else math.nan


def ratio(numerator: float, denominator: float) -> float:
    if denominator <= 0.0 or math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def merge_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for mapping in counts:
        for key, value in mapping.items():
            merged[key] = merged.get(key, 0) + value
    return dict(sorted(merged.items()))
