"""``asteroid evaluate``: energy and force errors of a model on labelled data, overall and per element."""

from __future__ import annotations

import json

import numpy as np

from . import units
from .data import Dataset
from .data.dataset import element_symbol
from .models import ForceField
from .predictor import Predictor
from .refinement.settings import RefineSettings, TTTSettings


def _stats(errors: np.ndarray, unit_scale: float) -> tuple[float, float]:
    return float(np.mean(np.abs(errors)) * unit_scale), float(np.sqrt(np.mean(errors ** 2)) * unit_scale)


def evaluate(model: ForceField | Predictor, data: Dataset, fidelity: str | None = None, batch_size: int = 50,
             refine: RefineSettings | str | None = None, ttt: TTTSettings | None = None) -> dict:
    """MAE and RMSE of energies (meV, kcal/mol) and forces (meV/Å, kcal/mol/Å), forces also per element.

    Predictions come from the Predictor (predictor.py), as for the calculator and MD: every
    configuration is predicted with the reference energies of `fidelity` (default: the
    model's first, most accurate one), whatever fidelity label the data carries; a
    Δ-learning model's predictions include its baseline (its cost is reported); refine
    ("radius", "ttt", "radius+ttt") refines a copy of the model for the whole set first
    and reports what it chose and cost. A Predictor may be passed instead of a model.
    """
    predictor = model if isinstance(model, Predictor) else Predictor(model, fidelity, RefineSettings.parse(refine, ttt))
    labelled = [c for c in data if c.energy is not None and c.forces is not None]
    if not labelled:
        raise ValueError(f"{data.source or 'dataset'}: no configuration has both energy and forces")
    energy, forces, numbers = [], [], []
    for chunk, energies, chunk_forces in predictor.predict_configurations(labelled, batch_size):
        energy.append(energies - np.array([c.energy for c in chunk]))
        forces += [f - c.forces for f, c in zip(chunk_forces, chunk)]
        numbers += [c.numbers for c in chunk]
    energy, forces, numbers = np.concatenate(energy), np.concatenate(forces), np.concatenate(numbers)
    result = {"configurations": len(labelled), "fidelity": predictor.fidelity, **_error_table(energy, forces),
              **_baseline_report(predictor, len(labelled)),
              "refinement": predictor.refinements[-1] if predictor.refinements else {"refine": "none"},
              "per_element": {}}
    for z in sorted(set(numbers.tolist())):
        mae, rmse = _stats(forces[numbers == z], 1e3)
        result["per_element"][element_symbol(z)] = {"force_mae_meV_per_A": mae, "force_rmse_meV_per_A": rmse}
    return result


def _error_table(energy: np.ndarray, forces: np.ndarray) -> dict:
    """Energy errors [B] (eV) and force errors [N, 3] (eV/Å) as MAE/RMSE in meV and kcal/mol."""
    kcal, kcal_A = 1 / units.energy_factor("kcal/mol"), 1 / units.force_factor("kcal/mol/Å")
    return {"energy_mae_meV": _stats(energy, 1e3)[0], "energy_rmse_meV": _stats(energy, 1e3)[1],
            "energy_mae_kcal_per_mol": _stats(energy, kcal)[0],
            "force_mae_meV_per_A": _stats(forces, 1e3)[0], "force_rmse_meV_per_A": _stats(forces, 1e3)[1],
            "force_mae_kcal_per_mol_A": _stats(forces, kcal_A)[0],
            "force_rmse_kcal_per_mol_A": _stats(forces, kcal_A)[1]}


def _baseline_report(predictor: Predictor, structures: int) -> dict:
    if predictor.baseline is None:
        return {}
    return {"delta_baseline": predictor.baseline.method,
            "baseline_seconds_per_structure": predictor.baseline_seconds / max(structures, 1)}


def format_evaluation(result: dict, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(result, indent=2)
    lines = [f"{result['configurations']} configurations, predicted at fidelity {result['fidelity']!r}",
             f"energy  MAE {result['energy_mae_meV']:.2f} meV ({result['energy_mae_kcal_per_mol']:.3f} kcal/mol), "
             f"RMSE {result['energy_rmse_meV']:.2f} meV",
             f"forces  MAE {result['force_mae_meV_per_A']:.2f} meV/Å ({result['force_mae_kcal_per_mol_A']:.3f} "
             f"kcal/mol/Å), RMSE {result['force_rmse_meV_per_A']:.2f} meV/Å "
             f"({result['force_rmse_kcal_per_mol_A']:.3f} kcal/mol/Å)"]
    refinement = result.get("refinement", {})
    if refinement.get("refine", "none") != "none":
        chosen = [f"cutoff {refinement['cutoff_A']} Å (trained {refinement['trained_cutoff_A']} Å)"
                  if "cutoff_A" in refinement else "",
                  _ttt_line(refinement) if "ttt_seconds" in refinement else ""]
        labels = (f" ({refinement['ttt_prior']} labels: {refinement['ttt_label_seconds'] * 1e3:.1f} ms in all)"
                  if "ttt_label_seconds" in refinement else "")
        lines.append(f"refined ({refinement['refine']}): " + "; ".join(c for c in chosen if c) +
                     f"; {refinement['seconds_per_structure'] * 1e3:.1f} ms per structure{labels}")
    if result.get("delta_baseline"):
        lines.append(f"Δ-learning model: every prediction includes {result['delta_baseline']} computed at inference "
                     f"({result['baseline_seconds_per_structure'] * 1e3:.1f} ms per structure)")
    lines += [f"  {symbol:>2}: force MAE {e['force_mae_meV_per_A']:.2f} meV/Å, RMSE {e['force_rmse_meV_per_A']:.2f} meV/Å"
              for symbol, e in result["per_element"].items()]
    return "\n".join(lines)


def _ttt_line(refinement: dict) -> str:
    before, after = refinement["ttt_prior_loss_before"], refinement["ttt_prior_loss_after"]
    train = refinement.get("ttt_prior_loss_train")
    versus = f" (training {train:.3g})" if train is not None else ""
    if refinement.get("ttt_adapted", True):
        return f"test-time training: prior loss {before:.3g} -> {after:.3g}{versus}"
    return f"test-time training held back by its gate: prior loss {before:.3g}{versus}, nothing to adapt to"
