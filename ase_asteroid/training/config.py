"""``asteroid train`` configuration: a YAML file of plain values, validated with errors that
name the file and the offending key before any data is read. ``model:`` becomes the
backend's typed config (MACEConfig | EGNNConfig). Data paths are relative to the YAML file;
``demo:NAME`` names a shipped demo dataset (e.g. ``demo:ethanol_b3lyp``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
import yaml

from .. import units
from ..models import BACKENDS, DTYPES, EGNNConfig, MACEConfig, config_class
from ..models.config import check_types
from ..models.prior import PRIOR_KINDS
from .loop import FitConfig
from .recipes import KINDS, recipe

METHODS = ("standard", "asteroid", "pretrain_finetune", "cheap_only", "score_matching", "delta", "multi_head")

#: Model fields a run sets from its data and method (TrainConfig.model_for), never from the YAML.
FROM_DATA = {"species": "the elements of the accurate, cheap and more_cheap data",
             "num_heads": "one readout head per fidelity for multi_head (else one), plus one for a prior"}
#: The species a parsed model section holds until model_for sets the data's.
STAND_IN_SPECIES = (1,)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e-3`` and ``5E2`` are floats
    (YAML 1.1, PyYAML's default, wants a dot and reads them as strings)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"), list("-+0123456789."))


def read_yaml(path: Path):
    """The YAML document at `path`; a syntax error is one ValueError line with file:line:column."""
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ValueError(f"{where}: YAML syntax error: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not readable as YAML ({str(error).splitlines()[0]})") from None


@dataclass(frozen=True)
class DataSpec:
    """path (file or demo:NAME); with perm = default_rng(seed).permutation(len(file)):
    train = perm[:train] (-1: all but the validation set), val = perm[val_start:val_start + val]
    (val_start defaults to right after the training set; the MD17@CCSD protocol uses 250);
    labels: rMD17 files only, "new" (PBE/def2-SVP) or "old" (the original MD17 PBE+vdW-TS);
    energy_unit / force_unit: the file's units (e.g. "eV", "kcal/mol/Å"; default: kcal/mol for
    npz, eV otherwise, with a warning when the labels look like another unit)."""

    path: str
    train: int = -1
    val: int = 50
    seed: int = 0
    val_start: int | None = None
    labels: str = "new"
    energy_unit: str | None = None
    force_unit: str | None = None

    def __post_init__(self) -> None:
        check_types(self)
        try:
            units.energy_factor(self.energy_unit or "eV"), units.force_factor(self.force_unit or "eV/Å")
        except ValueError as error:
            raise ValueError(f"energy_unit/force_unit: {error}") from None


def model_settings(values) -> MACEConfig | EGNNConfig:
    """The backend's typed config of a ``model:`` section: ``name`` picks the backend (BACKENDS),
    every other key is a field of its config; a typed config passes as it is. Its species and
    num_heads are stand-ins until TrainConfig.model_for sets them from the data. ValueError
    naming the key, e.g. ``model.chanels: unknown key; known: [...]``."""
    if isinstance(values, tuple(config_cls for config_cls, _ in BACKENDS.values())):
        return values
    if not isinstance(values, dict):
        raise ValueError(f"model: expected a mapping of keys to values, got {values!r}")
    try:
        config_cls = config_class(values.get("name"))
    except ValueError as error:
        raise ValueError(f"model.name: {error}") from None
    for key, source in FROM_DATA.items():
        if key in values:
            raise ValueError(f"model.{key}: set from the data ({source}); remove it")
    known = sorted(f.name for f in fields(config_cls) if f.name not in FROM_DATA)
    unknown = sorted(set(values) - set(known))
    if unknown:
        keys = ", ".join(f"model.{key}" for key in unknown)
        raise ValueError(f"{keys}: unknown key{'s' if len(unknown) > 1 else ''}; known: {known}")
    try:
        return config_cls(species=STAND_IN_SPECIES, **values)
    except ValueError as error:
        raise ValueError(f"model: {error}") from None


@dataclass(frozen=True)
class TrainConfig:
    """method (METHODS); accurate/cheap data; model: the backend's typed config (MACEConfig |
    EGNNConfig, or a mapping of its fields with ``name``, parsed by model_settings; species and
    num_heads come from the data: model_for); dtype;
    gamma_eV_per_A: one γ or a list searched by validation error after fine-tuning;
    gamma_iqr_fractions: instead, a γ grid placed on the spread of B: each fraction times the
    interquartile range of B over the cheap set (known after stage 1; recorded in eV/Å);
    temperature_K: sampling temperature of the cheap geometries (score_matching, which
    ignores their labels); cost_ratio + accurate_budget: equal-cost comparison, at most
    (accurate_budget - accurate.train) x cost_ratio cheap configurations are used;
    delta_baseline: the labeller (e.g. gfn2-xtb) whose labels a delta model learns to correct
    (it runs on the accurate configurations in training and on every structure at inference);
    multi_head: one backbone, one readout head per fidelity (accurate, cheap, and each of
    more_cheap: further data specs of other fidelities), trained jointly; head_loss_weights
    {fidelity: weight} scale each head's loss terms; accurate_repeats repeats the accurate
    configurations in every epoch (the sampling ratio); prior: a cheap method trained
    jointly on an auxiliary head in every stage, its loss terms weighted by prior_weight:
    "gfn2-xtb", "gfn1-xtb" or "gaff2" (that labeller's labels, as `asteroid data label`
    computes them), "lj" (a Lennard-Jones prior fitted to the cheap data, or the accurate if
    there is none) or "lj-uff" (UFF parameters); it enables test-time training
    (refinement/ttt.py), which computes the same labels for the structures at hand.
    fit / pretrain_fit: FitConfig keys that override the model's named recipe
    (training/recipes.py) for the accurate-data stages (from scratch, joint, fine-tuning) and the
    pre-training stages; empty = the recipe as it is."""

    method: str
    accurate: DataSpec
    model: MACEConfig | EGNNConfig = field(default_factory=lambda: model_settings({"name": "egnn"}))
    dtype: str = "float32"
    cheap: DataSpec | None = None
    test: str | None = None
    gamma_eV_per_A: float | list = 0.05
    gamma_iqr_fractions: list = field(default_factory=list)
    temperature_K: float = 0.0
    cost_ratio: float = 0.0
    accurate_budget: int = 0
    delta_baseline: str = ""
    more_cheap: list = field(default_factory=list)
    head_loss_weights: dict = field(default_factory=dict)
    accurate_repeats: int = 1
    prior: str = ""
    prior_weight: float = 0.1
    fit: dict = field(default_factory=dict)
    pretrain_fit: dict = field(default_factory=dict)
    out: str = "train_out"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", model_settings(self.model))
        check_types(self)
        for key in ("fit", "pretrain_fit"):
            if not isinstance(getattr(self, key), dict):
                raise ValueError(f"{key}: expected a mapping of keys to values, got {getattr(self, key)!r}")
        for kind in KINDS:
            self.fit_config(kind)  # unknown keys and bad values fail here, naming the key
        if self.method not in METHODS:
            raise ValueError(f"method: must be one of {METHODS}, got {self.method!r}")
        if self.method not in ("standard", "delta") and self.cheap is None:
            raise ValueError(f"method {self.method!r} needs a 'cheap' data section")
        if not self.gammas or not all(isinstance(g, (int, float)) and g > 0 for g in self.gammas):
            raise ValueError(f"gamma_eV_per_A: must be a positive number or a list of them, got {self.gamma_eV_per_A}")
        if not all(isinstance(f, (int, float)) and f > 0 for f in self.gamma_iqr_fractions):
            raise ValueError(f"gamma_iqr_fractions: must be positive numbers, got {self.gamma_iqr_fractions}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.method == "score_matching" and not self.temperature_K > 0:
            raise ValueError("temperature_K: score_matching needs the temperature (K) the cheap geometries were "
                             f"sampled at, got {self.temperature_K}")
        if (self.method == "delta") != bool(self.delta_baseline):
            raise ValueError("delta_baseline: the delta method needs it (a labelling method such as gfn2-xtb), "
                             "and only the delta method uses it")
        if self.prior and self.prior not in PRIOR_KINDS:
            raise ValueError(f"prior: must be one of {', '.join(PRIOR_KINDS)} (or empty), got {self.prior!r}")
        if not self.prior_weight > 0:
            raise ValueError(f"prior_weight: must be positive, got {self.prior_weight}")
        if self.accurate_repeats < 1:
            raise ValueError(f"accurate_repeats: must be at least 1, got {self.accurate_repeats}")
        if self.method != "multi_head" and (self.more_cheap or self.head_loss_weights):
            raise ValueError("more_cheap and head_loss_weights are options of the multi_head method")
        if self.cost_ratio and not (self.cost_ratio > 0 and self.accurate_budget > 0):
            raise ValueError("cost_ratio needs accurate_budget: the number of accurate labels the compared "
                             "standard model uses (e.g. 250)")

    def fit_config(self, kind: str) -> FitConfig:
        """The FitConfig of a stage of `kind` (recipes.KINDS): the model's
        recipe with this config's fit (or, for pre-training, pretrain_fit) keys applied."""
        overrides, where = (self.pretrain_fit, "pretrain_fit") if kind == "pretrain" else (self.fit, "fit")
        return recipe(self.model.name, kind, overrides, where)

    def model_for(self, datasets) -> MACEConfig | EGNNConfig:
        """The model config of a run on `datasets` (accurate first): species = their elements;
        num_heads = one per fidelity for multi_head (else one), plus one for the prior's head."""
        species = sorted(set().union(*(d.species for d in datasets)))
        fidelities = dict.fromkeys(f for d in datasets for f in d.fidelities)
        num_heads = (len(fidelities) if self.method == "multi_head" else 1) + bool(self.prior)
        return replace(self.model, species=tuple(species), num_heads=num_heads)

    @property
    def gammas(self) -> tuple[float, ...]:
        values = self.gamma_eV_per_A if isinstance(self.gamma_eV_per_A, (list, tuple)) else [self.gamma_eV_per_A]
        return tuple(values)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def build_section(cls, values, where: str):
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {values!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from error


def load_config(path) -> TrainConfig:
    """Read and validate a training YAML; relative data paths become relative to its folder."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such config file")
    return config_from_values(read_yaml(path) or {}, path.parent, str(path))


def config_from_values(values: dict, folder: Path = Path("."), where: str = "config") -> TrainConfig:
    """The TrainConfig of a training YAML's plain values (what load_config reads; quickstart
    builds its runs here too): relative data paths become relative to `folder`, and every
    error begins with `where` (the file) and names the key. Reads no data."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping at the top level")
    values = dict(values)
    for key in ("accurate", "cheap"):
        if values.get(key) is not None:
            spec = build_section(DataSpec, values[key], f"{where}: {key}")
            values[key] = replace(spec, path=_resolve(spec.path, folder))
    values["more_cheap"] = [replace(spec, path=_resolve(spec.path, folder)) for spec in
                            (build_section(DataSpec, v, f"{where}: more_cheap[{i}]")
                             for i, v in enumerate(values.get("more_cheap") or []))]
    if values.get("test"):
        values["test"] = _resolve(values["test"], folder)
    return build_section(TrainConfig, values, where)


def _resolve(data_path: str, folder: Path) -> str:
    return data_path if data_path.startswith("demo:") or Path(data_path).is_absolute() else str(folder / data_path)
