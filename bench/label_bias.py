"""The true bias of the cheap labels where it is known: rMD17 geometries that are also in a
MD17@CCSD file, with the rMD17 files' new labels (PBE/def2-SVP) and old ones (the original
MD17's PBE+vdW-TS).

    python bench/label_bias.py --write docs/benchmarks.md
    python bench/label_bias.py --molecules ethanol --stage-one runs/ethanol_mace_seed0_bias_identification.ckpt

With ``--bonds``, the table is instead the cheap labels' force offset on each X-H bond's H
along the bond at the shared geometries: where the cheap method puts a bond longer or softer
than CCSD(T) does (aspirin's acid O-H, docs/benchmarks.md's stability section).

A geometry is shared when its interatomic distances match a CCSD configuration's within
1e-3 Å (as the leakage filter of bench/md17_ccsd.py finds them). The CCSD(T) ethanol file is
in another frame, so each rMD17 geometry is superimposed onto its CCSD partner (Kabsch,
proper rotation) and its forces are rotated with it. The true bias of a configuration is
then what ASTEROID's B(x) estimates: the mean |f_cheap − f_CCSD| over force components,
eV/Å. Bias weighting can only select among cheap labels when this varies between
configurations, so the table gives its spread (5/25/50/75/95 % points and the
interquartile range relative to the median) besides its level. With ``--stage-one CKPT``
(a model trained on the accurate labels, ASTEROID's stage 1) it also gives B(x) at the same
geometries and its correlation with the true bias: how well the model identifies the bias,
and B over the N (``--cheap``) cheap training configurations of bench/md17_ccsd.py's runs:
its quartiles and the share above the fence of training/stages.py's bias_spread (section
``label-bias-stage-one``).

    python bench/label_bias.py --molecules ethanol --labels new --corrupt 0.25 1 \
        --stage-one runs/ethanol_mace_seed0_140ep_bias_identification.ckpt --gamma-iqr-fractions 1

With ``--corrupt FRACTION SIZE`` (and ``--corrupt-kind``, as in bench/md17_ccsd.py) and a
stage-1 model, the table is instead about the controlled case: B(x) on the N (``--cheap``)
cheap training configurations of bench/md17_ccsd.py's runs, corrupted as there, for the known
bad ones against the rest — their medians, the AUC (the probability that a bad configuration
has the larger B: 1 is a perfect separation, 0.5 none), and the share of the pre-training's
total weight w ∝ exp(−B/γ) that the bad ones keep at γ = the given fractions of B's
interquartile range (the run's rule); without weights that share is FRACTION.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from docs_section import report
from scipy.stats import mannwhitneyu, pearsonr, spearmanr

from ase_asteroid.data import Dataset, read_dataset
from ase_asteroid.data.dataset import element_symbol
from ase_asteroid.data.tools import matching_pairs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "md17"
CCSD = {"ethanol": ["ethanol_ccsd_t-train.npz"], "malonaldehyde": ["malonaldehyde_ccsd_t-train.npz"],
        "aspirin": ["aspirin_ccsd-train.npz", "aspirin_ccsd-test.npz"]}
LABELS = {"new": "PBE/def2-SVP", "old": "PBE+vdW-TS"}
FENCE = ("above fence: the share of the N with B above the median + 4 × (median − first quartile), the "
         "diagnostic a run records in gamma_search.json.")


def superimposing_rotation(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """The proper rotation R (3×3) that minimises |(moving − centroid) R − (fixed − centroid)|."""
    a, b = moving - moving.mean(0), fixed - fixed.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def shared_pairs(data_dir: Path, molecule: str, labels: str, ccsd: Dataset | None = None
                 ) -> tuple[Dataset, Dataset, list, list]:
    """The rMD17 configurations found in the CCSD files, or in `ccsd` where it is given (cheap,
    ccsd: partners at the same positions of the two), each cheap one's rotation onto its
    partner, and each partner's index in the CCSD files (the first file first) or in `ccsd`."""
    if ccsd is None:
        ccsd = Dataset([c for name in CCSD[molecule] for c in read_dataset(data_dir / name)])
    cheap = Dataset([c for f in sorted(data_dir.glob(f"rmd17_{molecule}_*.npz")) for c in read_dataset(f, labels=labels)])
    pairs = matching_pairs(cheap, ccsd)
    rotations = [superimposing_rotation(cheap[i].positions, ccsd[j].positions) for i, j in pairs]
    return (cheap.subset([i for i, _ in pairs]), ccsd.subset([j for _, j in pairs]), rotations,
            [j for _, j in pairs])


def shared_geometries(data_dir: Path, molecule: str, labels: str
                      ) -> tuple[Dataset, np.ndarray, np.ndarray, np.ndarray]:
    """The rMD17 configurations found in the CCSD files, their true bias per configuration
    (eV/Å), the superposition residuals (Å), and each one's index in the CCSD files (the
    first file first)."""
    cheap, ccsd, rotations, index = shared_pairs(data_dir, molecule, labels)
    bias, residual = [], []
    for c, a, rotation in zip(cheap, ccsd, rotations):
        moved = (c.positions - c.positions.mean(0)) @ rotation
        residual.append(np.abs(moved - (a.positions - a.positions.mean(0))).max())
        bias.append(np.abs(c.forces @ rotation - a.forces).mean())
    return cheap, np.array(bias), np.array(residual), np.array(index)


def hydrogen_bonds(numbers: np.ndarray, positions: np.ndarray, max_length_A: float = 1.25) -> list[tuple[int, int]]:
    """The X-H bonds of a geometry: (heavy atom, hydrogen) pairs closer than max_length_A."""
    return [(x, h) for h in np.flatnonzero(numbers == 1) for x in np.flatnonzero(numbers > 1)
            if np.linalg.norm(positions[h] - positions[x]) < max_length_A]


def bond_offsets(positions: np.ndarray, cheap_forces: np.ndarray, accurate_forces: np.ndarray,
                 bonds: list[tuple[int, int]]) -> np.ndarray:
    """(configurations × bonds) the cheap minus the accurate force on each bond's H along the
    unit vector from X to H, eV/Å (all arrays in one frame): positive where the cheap labels
    push the H outward more, i.e. their X-H bond is longer or softer there."""
    x, h = (np.array(side) for side in zip(*bonds))
    unit = positions[:, h] - positions[:, x]
    unit /= np.linalg.norm(unit, axis=-1, keepdims=True)
    return np.einsum("cbk,cbk->cb", (cheap_forces - accurate_forces)[:, h], unit)


def shared_bond_offsets(cheap: Dataset, ccsd: Dataset, rotations: list, bonds: list[tuple[int, int]]) -> np.ndarray:
    """bond_offsets (configurations × bonds, eV/Å) of shared_pairs' partners, the cheap forces
    rotated into the CCSD frame."""
    return bond_offsets(np.array([a.positions for a in ccsd]),
                        np.array([c.forces @ r for c, r in zip(cheap, rotations)]),
                        np.array([a.forces for a in ccsd]), bonds)


def bond_table(molecules: list[str], labels: list[str], data_dir: Path) -> str:
    lines = ["Cheap minus CCSD force on each X-H bond's H along the bond (X → H), eV/Å, at the geometries "
             "shared with the CCSD files: median [min, max] over them. Positive: the cheap labels push the H "
             "outward more (a longer or softer bond).", "",
             "| molecule | cheap labels | shared geometries | bond | offset along the bond |", "|---|---|---|---|---|"]
    for molecule in molecules:
        for label in labels:
            cheap, ccsd, rotations, _ = shared_pairs(data_dir, molecule, label)
            numbers = ccsd[0].numbers
            bonds = hydrogen_bonds(numbers, ccsd[0].positions)
            offsets = shared_bond_offsets(cheap, ccsd, rotations, bonds)
            for (x, h), column in zip(bonds, offsets.T):
                lines.append(f"| {molecule} | {label} ({LABELS[label]}) | {len(ccsd)} | {element_symbol(numbers[x])}{x}-H{h} | "
                             f"{np.median(column):+.3f} [{column.min():+.3f}, {column.max():+.3f}] |")
    return "\n".join(lines)


def row(molecule: str, labels: str, args) -> dict:
    cheap, bias, residual, ccsd_index = shared_geometries(args.data_dir, molecule, labels)
    q = np.percentile(bias, [5, 25, 50, 75, 95])
    result = {"molecule": molecule, "labels": labels, "shared": len(bias), "max_residual_A": float(residual.max()),
              "mean": float(bias.mean()), "percentiles": q.tolist(), "relative_iqr": float((q[3] - q[1]) / q[2])}
    if args.stage_one:
        from ase_asteroid.checkpoint import load_checkpoint
        from ase_asteroid.training.stages import bias_spread, force_bias
        stage_one = load_checkpoint(args.stage_one)
        estimate = force_bias(stage_one, cheap)
        result.update(bias_spread(force_bias(stage_one, cheap_training_set(molecule, labels, args)[0])))
        # stage 1 of the MD17 protocol trains on perm[:200] of the first CCSD file: B there is not a prediction
        unseen = ~np.isin(ccsd_index, np.random.default_rng(0).permutation(
            len(read_dataset(args.data_dir / CCSD[molecule][0])))[:200])
        result.update(B_median=float(np.median(estimate)), pearson=float(pearsonr(estimate, bias)[0]),
                      spearman=float(spearmanr(estimate, bias)[0]), unseen=int(unseen.sum()),
                      pearson_unseen=float(pearsonr(estimate[unseen], bias[unseen])[0]))
    return result


def cheap_training_set(molecule: str, labels: str, args) -> tuple[Dataset, np.ndarray]:
    """The N (--cheap) cheap training configurations of bench/md17_ccsd.py's runs, corrupted
    as there with --corrupt, and which of them are bad."""
    from md17_ccsd import accurate_splits, cheap_pool, cheap_permutation, corrupted
    *_, ccsd = accurate_splits(args.data_dir, molecule)
    pool = cheap_pool(args.data_dir, molecule, ccsd, args.cache_dir / f"cheap_{molecule}.json", labels=labels)
    bad = np.zeros(0, dtype=int)
    if args.corrupt:
        pool, bad = corrupted(pool, *args.corrupt, args.corrupt_kind)
    chosen = cheap_permutation(len(pool))[:args.cheap]
    return pool.subset(chosen), np.isin(chosen, bad)


def corruption_row(molecule: str, labels: str, args) -> dict:
    """B(x) of the stage-1 model on the corrupted cheap training set of bench/md17_ccsd.py."""
    from ase_asteroid.checkpoint import load_checkpoint
    from ase_asteroid.training.stages import bias_spread, force_bias
    cheap, is_bad = cheap_training_set(molecule, labels, args)
    bias = force_bias(load_checkpoint(args.stage_one), cheap)
    return {"molecule": molecule, "labels": labels, "cheap": int(args.cheap),
            "corrupt": f"{args.corrupt_kind} {args.corrupt[0]:g} × {args.corrupt[1]:g}",
            **separation(bias, is_bad, args.gamma_iqr_fractions), **bias_spread(bias)}


def separation(bias: np.ndarray, is_bad: np.ndarray, gamma_iqr_fractions: list[float]) -> dict:
    """How B(x) (eV/Å) tells the known bad labels from the rest: the medians, the AUC (the
    probability that a bad configuration has the larger B), B's interquartile range, and per γ
    (a fraction of that range) the share of the total weight exp(−B/γ) that the bad ones keep."""
    from ase_asteroid.training.stages import bias_weights
    q1, q3 = np.percentile(bias, [25, 75])
    shares = {}
    for fraction in gamma_iqr_fractions:
        w = bias_weights(bias, fraction * (q3 - q1))
        shares[f"{fraction:g}"] = float(w[is_bad].sum() / w.sum())
    return {"bad": int(is_bad.sum()), "B_median_bad": float(np.median(bias[is_bad])),
            "B_median_clean": float(np.median(bias[~is_bad])), "iqr": float(q3 - q1),
            "auc": float(mannwhitneyu(bias[is_bad], bias[~is_bad]).statistic / (is_bad.sum() * (~is_bad).sum())),
            "weight_share_bad": shares}


def corruption_table(rows: list[dict]) -> str:
    lines = ["B(x) of the stage-1 model on the cheap training configurations with known bad labels (eV/Å), and "
             "the share of the pre-training weight that the bad ones keep at γ = fraction × B's interquartile "
             "range (without weights: their count's share); " + FENCE, "",
             "| molecule | cheap labels | corruption | cheap | bad | B median bad | B median clean | AUC | IQR | "
             "above fence | weight share of the bad (γ / IQR: share) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shares = ", ".join(f"{k}: {v:.1%}" for k, v in r["weight_share_bad"].items())
        lines.append(f"| {r['molecule']} | {r['labels']} | {r['corrupt']} | {r['cheap']} | {r['bad']} | "
                     f"{r['B_median_bad']:.3f} | {r['B_median_clean']:.3f} | {r['auc']:.3f} | {r['iqr']:.3f} | "
                     f"{r['share_above_bias_fence']:.1%} | {shares} |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = ["True bias of the cheap force labels at the geometries shared with the CCSD files (mean |Δf| "
             "per configuration over force components, eV/Å).", "",
             "| molecule | cheap labels | shared geometries | mean | 5/25/50/75/95 % | IQR / median |"
             + (" B(x) median | Pearson | Spearman | not in stage 1's training | Pearson there | B on the N cheap: "
                "quartiles | above fence |" if "pearson" in rows[0] else ""),
             "|---|---|---|---|---|---|" + ("---|---|---|---|---|---|---|" if "pearson" in rows[0] else "")]
    for r in rows:
        line = (f"| {r['molecule']} | {r['labels']} ({LABELS[r['labels']]}) | {r['shared']} | {r['mean']:.3f} | "
                + "/".join(f"{x:.3f}" for x in r["percentiles"]) + f" | {r['relative_iqr']:.2f} |")
        if "pearson" in r:
            line += (f" {r['B_median']:.3f} | {r['pearson']:.2f} | {r['spearman']:.2f} | {r['unseen']} | "
                     f"{r['pearson_unseen']:.2f} | " + "/".join(f"{x:.3f}" for x in r["bias_quartiles_eV_per_A"])
                     + f" | {r['share_above_bias_fence']:.1%} |")
        lines.append(line)
    worst = max(r["max_residual_A"] for r in rows)
    lines += ["", f"Largest superposition residual of a shared geometry: {worst:.1e} Å."]
    if "pearson" in rows[0]:
        lines += ["", "B on the N cheap: B(x) of the stage-1 model over the N (--cheap) cheap training configurations "
                  "of bench/md17_ccsd.py's runs; " + FENCE]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--molecules", nargs="+", default=list(CCSD), choices=list(CCSD))
    parser.add_argument("--labels", nargs="+", default=list(LABELS), choices=list(LABELS))
    parser.add_argument("--stage-one", type=Path, help="a stage-1 checkpoint: also report B(x) and its correlation")
    parser.add_argument("--corrupt", nargs=2, type=float, metavar=("FRACTION", "SIZE"),
                        help="the controlled case of bench/md17_ccsd.py (needs --stage-one)")
    parser.add_argument("--corrupt-kind", choices=["noise", "scale"], default="noise")
    parser.add_argument("--cheap", type=int, default=4000, help="with --stage-one: the runs' cheap training count")
    parser.add_argument("--gamma-iqr-fractions", nargs="+", type=float, default=[1.0],
                        help="with --corrupt: the γ grid as fractions of B's interquartile range")
    parser.add_argument("--cache-dir", type=Path, default=Path("bench_results"),
                        help="with --stage-one: where bench/md17_ccsd.py keeps cheap_MOLECULE.json (its --results folder)")
    parser.add_argument("--bonds", action="store_true",
                        help="instead: the cheap labels' force offset along each X-H bond (section label-bias-bonds)")
    parser.add_argument("--write", type=Path, help="update this markdown file's label-bias section")
    args = parser.parse_args(argv)
    if args.corrupt and not args.stage_one:
        parser.error("--corrupt needs --stage-one: the corrupted labels are judged by a stage-1 model's B(x)")
    command = "python bench/label_bias.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.bonds:
        report(bond_table(args.molecules, args.labels, args.data_dir), "label-bias-bonds", command, args.write)
        return 0
    if args.corrupt:
        rows = [corruption_row(m, labels, args) for m in args.molecules for labels in args.labels]
        report(corruption_table(rows), f"label-bias-corrupt-{args.corrupt_kind}", command, args.write)
        return 0
    rows = [row(m, labels, args) for m in args.molecules for labels in args.labels]
    report(table(rows), "label-bias-stage-one" if args.stage_one else "label-bias", command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
