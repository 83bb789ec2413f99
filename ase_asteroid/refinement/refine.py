"""One entry point for the calculator, `asteroid evaluate` and `asteroid-md`: a model refined
for the structures at hand by radius refinement, test-time training, or both (radius first)."""

from __future__ import annotations

import time

from ..data import Configuration
from .options import CHOICES
from .radius import choose_cutoff, with_cutoff
from .ttt import TTTSettings, adapt_to_structures



def check_refinable(model, refine: str | None) -> None:
    """ValueError, before any work, if `model` cannot do `refine`."""
    if not refine:
        return
    if refine not in CHOICES:
        raise ValueError(f"refine must be one of {CHOICES}, got {refine!r}")
    if "radius" in refine and not model.graph_spectrum:
        raise ValueError("radius refinement needs the training graphs' spectrum, which this checkpoint lacks "
                         "(train it with this version of ase_asteroid)")
    if "ttt" in refine and getattr(model, "prior", None) is None:
        raise ValueError("test-time training needs a model trained jointly with a prior head "
                         "(train with `prior: lj`); this one has none")


def refine_model(model, structures, refine: str | None, settings: TTTSettings = TTTSettings()) -> tuple[object, dict]:
    """(refined copy or `model` itself, report) for `structures` (Configurations or ASE Atoms)."""
    check_refinable(model, refine)
    report = {"refine": refine or "none"}
    if not refine:
        return model, report
    configs = [s if isinstance(s, Configuration) else Configuration(s.numbers, s.positions) for s in structures]
    start = time.perf_counter()
    if "radius" in refine:
        cutoff, _ = choose_cutoff(model.graph_spectrum, [c.positions for c in configs])
        report.update(cutoff_A=cutoff, trained_cutoff_A=model.cutoff)
        if cutoff != model.cutoff:
            model = with_cutoff(model, cutoff)
    if "ttt" in refine:
        model, ttt = adapt_to_structures(model, configs, settings)
        report.update({f"ttt_{k}": v for k, v in ttt.items()})
    report["seconds_per_structure"] = (time.perf_counter() - start) / len(configs)
    return model, report

