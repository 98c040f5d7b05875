"""Which bit width each quantizer site gets: one global width with per-group overrides.

Groups: ``input`` (the model's raw input features, entering the first linear layer), ``weight``
(every weight matrix), ``linear`` (the other linear-layer inputs and outputs), ``agg`` (features entering
aggregation and the aggregated result), ``update`` (the features a propagation step or GCN layer
hands on). BT/BT* applies to the sites that end up with 2 bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qgnn_cli.quant import OFF, QLRQuantizer

SITE_GROUPS = ("input", "weight", "linear", "agg", "update")


@dataclass(frozen=True)
class SitePlan:
    bits: int = OFF
    bt: str = "none"
    overrides: dict[str, int] = field(default_factory=dict)

    def bits_of(self, group: str) -> int:
        if group not in SITE_GROUPS:
            raise ValueError(f"unknown site group {group!r}: expected one of {SITE_GROUPS}")
        return self.overrides.get(group, self.bits)

    def make(self, group: str) -> QLRQuantizer:
        bits = self.bits_of(group)
        return QLRQuantizer(bits, self.bt if bits == 2 else "none")
