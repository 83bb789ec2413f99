"""One entry point for the Predictor (and so the calculator, `asteroid evaluate` and
`asteroid-md`): a model refined for the structures at hand by radius refinement,
test-time training, or both (radius first)."""

from __future__ import annotations

import time

from ..data import Configuration
from .radius import choose_cutoff
from .settings import RefineSettings, TTTSettings
from .ttt import adapt_to_structures


def check_refinable(model, refine: RefineSettings | str | None) -> None:
    """ValueError, before any work, if `model` cannot do `refine`."""
    refine = RefineSettings.parse(refine)
    if refine.radius and not model.extras.graph_spectrum:
        raise ValueError("radius refinement needs the training graphs' spectrum, which this checkpoint lacks "
                         "(train it with this version of ase_asteroid)")
    if refine.ttt and model.extras.prior is None:
        raise ValueError("test-time training needs a model trained jointly with a prior head "
                         "(train with `prior: gfn2-xtb`, `gaff2` or `lj`); this one has none")


def refine_model(model, structures, refine: RefineSettings | str | None,
                 settings: TTTSettings | None = None) -> tuple[object, dict]:
    """(refined copy or `model` itself, report) for `structures` (Configurations or ASE Atoms).
    `refine` is a RefineSettings or its name ("radius", "ttt", "radius+ttt"); `settings`
    overrides its TTT settings. The report's seconds_per_structure is the whole cost,
    the prior's labels included."""
    refine = RefineSettings.parse(refine, settings)
    check_refinable(model, refine)
    report = {"refine": refine.name}
    if not refine.enabled:
        return model, report
    configs = [s if isinstance(s, Configuration) else Configuration(s.numbers, s.positions) for s in structures]
    start = time.perf_counter()
    if refine.radius:
        cutoff, _ = choose_cutoff(model.extras.graph_spectrum, [c.positions for c in configs])
        report.update(cutoff_A=cutoff, trained_cutoff_A=model.cutoff)
        if cutoff != model.cutoff:
            model = model.with_cutoff(cutoff)
    if refine.ttt:
        model, ttt = adapt_to_structures(model, configs, settings or refine.settings)
        report.update({f"ttt_{k}": v for k, v in ttt.items()})
    report["seconds_per_structure"] = (time.perf_counter() - start) / len(configs)
    return model, report
