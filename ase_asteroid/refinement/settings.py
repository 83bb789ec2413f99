"""Refinement settings, the one place their defaults live (light: no torch import).

``RefineSettings.parse("radius+ttt")`` turns the user's word into two flags once, so no
code downstream matches substrings."""

from __future__ import annotations

from dataclasses import dataclass, field

#: What a user may ask for: radius refinement, test-time training, or both (radius first).
CHOICES = ("radius", "ttt", "radius+ttt")


@dataclass(frozen=True)
class TTTSettings:
    """steps and lr of the optimiser (sgd with momentum, or adam) on the prior's force loss;
    gate: adapt only when the prior head's loss on the structures exceeds `gate` times its
    loss on the training structures (stored in the checkpoint at training time), i.e. only
    for structures the model has not learnt; 0 adapts always."""

    steps: int = 50
    lr: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    gate: float = 10.0

    def __post_init__(self) -> None:
        if self.steps < 1 or not self.lr > 0:
            raise ValueError(f"TTT needs steps >= 1 and lr > 0, got steps={self.steps}, lr={self.lr}")
        if not self.gate >= 0:
            raise ValueError(f"TTT gate must be >= 0 (0: always adapt), got {self.gate}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"TTT optimizer must be sgd or adam, got {self.optimizer!r}")


@dataclass(frozen=True)
class RefineSettings:
    """radius: choose the cutoff by graph spectrum; ttt: test-time training on the prior
    head (with `ttt`); every: refine again every this many predictions (0: once, for the
    first structures predicted)."""

    radius: bool = False
    ttt: bool = False
    settings: TTTSettings = field(default_factory=TTTSettings)
    every: int = 0

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ValueError(f"refinement 'every' must be >= 0 calls, got {self.every}")

    @classmethod
    def parse(cls, refine: "str | RefineSettings | None", settings: TTTSettings | None = None,
              every: int = 0) -> "RefineSettings":
        """From "radius", "ttt", "radius+ttt", "" or None (no refinement)."""
        if isinstance(refine, RefineSettings):
            return refine
        if refine and refine not in CHOICES:
            raise ValueError(f"refine must be one of {CHOICES}, got {refine!r}")
        parts = set((refine or "").split("+"))
        return cls("radius" in parts, "ttt" in parts, settings or TTTSettings(), every)

    @property
    def enabled(self) -> bool:
        return self.radius or self.ttt

    @property
    def name(self) -> str:
        """"radius", "ttt", "radius+ttt" or "none"."""
        return "+".join(n for n, on in (("radius", self.radius), ("ttt", self.ttt)) if on) or "none"
