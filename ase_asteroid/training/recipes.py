"""Named default training recipes: one per backend (mace, egnn) and stage kind.

Stage kinds: ``scratch`` (training from random weights on accurate data: standard,
ASTEROID's bias identification, Δ-learning), ``joint`` (training from random weights on all
fidelities at once: multi-head), ``pretrain`` (pre-training on cheap or unlabelled data) and
``finetune`` (fine-tuning a pre-trained model on accurate data). A user gets them without
writing any ``fit:`` keys; every key of the YAML's ``fit`` (scratch, joint and finetune
stages) or ``pretrain_fit`` (pretrain stages) overrides the recipe's value. The evidence
for each choice is in docs/training.md ("Recipes").
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace

from .loop import FitConfig

KINDS = ("scratch", "joint", "pretrain", "finetune")

# FitConfig's own defaults are the MACE recipe from scratch: Adam at lr 0.01, batch 5, the
# rate halved after 10 epochs without a better validation force MAE, EMA 0.99, no stage two
# (measured against cosine decay + AMSGrad + stage two: docs/training.md, "Recipes").
_MACE = FitConfig()
# The EGNN's measured recipe: lr 0.01 with cosine decay, AMSGrad, batch 10 and a stage two.
_EGNN = replace(_MACE, batch_size=10, amsgrad=True, schedule="cosine", stage_two_at=0.75)
# A joint stage sees every cheap configuration in each epoch, so it runs ~10x fewer epochs
# than an accurate-data stage of the same cost (14 for 4000 cheap + 200 accurate): a plateau
# patience of 10 epochs never lowers the rate there, and cosine decay does (0.280 -> 0.245
# kcal/mol/Å on ethanol: docs/benchmarks.md, "MD17@CCSD").
RECIPES: dict[str, FitConfig] = {
    "mace-scratch": _MACE,
    "mace-joint": replace(_MACE, schedule="cosine"),
    "mace-pretrain": replace(_MACE, epochs=10),
    "mace-finetune": _MACE,
    "egnn-scratch": _EGNN,
    "egnn-joint": _EGNN,
    "egnn-pretrain": replace(_EGNN, epochs=10, stage_two_at=0.0),
    "egnn-finetune": _EGNN,
}


def recipe_name(backend: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"stage kind must be one of {KINDS}, got {kind!r}")
    name = f"{backend}-{kind}"
    if name not in RECIPES:
        raise ValueError(f"no training recipe for the model {backend!r}; known: {sorted(RECIPES)}")
    return name


def recipe(backend: str, kind: str, overrides: dict | None = None, where: str = "fit") -> FitConfig:
    """The `backend`'s recipe for a `kind` stage with `overrides` (FitConfig keys) applied.
    Unknown keys and bad values raise ValueError naming `where` and the key."""
    overrides = dict(overrides or {})
    known = {f.name for f in fields(FitConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    base = asdict(RECIPES[recipe_name(backend, kind)])
    try:
        return FitConfig(**{**base, **overrides})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from error
