"""Time-to-first-audio profiles: a distribution whose P50/P95/P99 match measured figures per region.

Sampling inverts a piecewise-linear CDF through the three quantiles (plus a floor and a ceiling), so the three
published quantiles are reproduced exactly in the limit and the tails stay bounded.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    name: str
    p50_ms: float
    p95_ms: float
    p99_ms: float

    def knots(self) -> tuple[tuple[float, float], ...]:
        """(cumulative probability, ms) points of the inverse CDF."""
        floor = 0.55 * self.p50_ms
        ceiling = self.p99_ms + (self.p99_ms - self.p95_ms)
        return ((0.0, floor), (0.5, self.p50_ms), (0.95, self.p95_ms), (0.99, self.p99_ms), (1.0, ceiling))

    def quantile_ms(self, probability: float) -> float:
        points = self.knots()
        for (p0, v0), (p1, v1) in itertools.pairwise(points):
            if probability <= p1:
                return v0 + (v1 - v0) * (probability - p0) / (p1 - p0)
        return points[-1][1]

    def sample_ms(self, rng: random.Random) -> float:
        return self.quantile_ms(rng.random())


PROFILES: MappingProxyType[str, LatencyProfile] = MappingProxyType(
    {
        "us-east": LatencyProfile("us-east", 180, 310, 480),
        "eu-west": LatencyProfile("eu-west", 220, 380, 560),
        "ap-tokyo": LatencyProfile("ap-tokyo", 280, 450, 720),
        "none": LatencyProfile("none", 0, 0, 0),
    }
)


def profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown latency profile {name!r}; choose from {', '.join(PROFILES)}") from None
