"""``asteroid campaign`` configuration: a YAML file of plain values in sections, each a frozen
dataclass validated with errors that name the file, the section and the key (``campaign.yaml:
sampling: unknown key(s) ['temprature_K']; known: [...]``) before any work starts. The
``training`` section holds the keys of an ``asteroid train`` YAML (method, model, fit, ...)
except the data and the output folder, which the campaign sets; it is validated by the
training config itself. ``molecule.xyz`` is relative to the YAML file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..acquisition import STRATEGIES
from ..labels import get_labeler
from ..labels.files import SAMPLERS
from ..models.config import check_types
from ..predictor import REFERENCE_METHODS
from ..training.config import TrainConfig, build_section, config_from_values, read_yaml

#: training keys the campaign sets itself (the data and where the checkpoints go).
SET_BY_CAMPAIGN = ("accurate", "cheap", "test", "out", "more_cheap")
#: training keys the stage-1 models of the acquisition rounds share with the final training.
STAGE_ONE_KEYS = ("model", "fit", "dtype")


@dataclass(frozen=True)
class MoleculeSpec:
    """The molecule: exactly one of `smiles` and `xyz` (a structure file, its first frame;
    relative to the YAML file); `charge` in e."""

    smiles: str = ""
    xyz: str = ""
    charge: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        if bool(self.smiles) == bool(self.xyz):
            raise ValueError("give exactly one of smiles and xyz")


@dataclass(frozen=True)
class SamplingSpec:
    """Step 1, the pool: `n` configurations by `method` (gaff2-md | normal-modes | md, as
    ``asteroid data sample``) at `temperature_K`, a frame every `every` MD steps of
    `timestep_fs`; `calculator` drives normal-modes and md (default gfn2-xtb)."""

    method: str = "gaff2-md"
    n: int = 1000
    temperature_K: float = 500.0
    every: int = 20
    timestep_fs: float = 0.5
    calculator: str = "gfn2-xtb"

    def __post_init__(self) -> None:
        check_types(self)
        _one_of(self.method, SAMPLERS, "method")
        _at_least(self, {"n": 1, "every": 1}, positive=("temperature_K", "timestep_fs"))
        _labeler(self.calculator, "calculator")


@dataclass(frozen=True)
class CheapSpec:
    """Step 2: the cheap labelling method of the whole pool (gfn2-xtb, gfn1-xtb, gaff2, lj,
    pyscf:METHOD/BASIS); `val`: pool configurations held back to validate pre-training."""

    method: str = "gfn2-xtb"
    val: int = 50

    def __post_init__(self) -> None:
        check_types(self)
        _labeler(self.method, "method")
        _at_least(self, {"val": 1})


@dataclass(frozen=True)
class AccurateSpec:
    """Step 3: the accurate method (e.g. ``pyscf:mp2/6-31g*``) and the random seed set: `seed`
    training labels, `val` labels for validation (model selection) and `test` labels for the
    learning curve and the parity plot, all drawn at random from the pool."""

    method: str = "pyscf:mp2/6-31g*"
    seed: int = 20
    val: int = 10
    test: int = 20

    def __post_init__(self) -> None:
        check_types(self)
        _labeler(self.method, "method")
        _at_least(self, {"seed": 1, "val": 1, "test": 1})


@dataclass(frozen=True)
class AcquisitionSpec:
    """Step 4: `rounds` rounds of `per_round` accurate labels picked by `strategy` (as
    ``asteroid select``: random, fps-geometry, fps-model, bias, committee) with the stage-1
    model of the labels so far (`committee_size` models for committee)."""

    strategy: str = "fps-model"  # as good as fps-geometry on MD17 ethanol, bias worse (docs/acquisition.md)
    per_round: int = 10
    rounds: int = 2
    committee_size: int = 3

    def __post_init__(self) -> None:
        check_types(self)
        _one_of(self.strategy, STRATEGIES, "strategy")
        _at_least(self, {"per_round": 1, "rounds": 0, "committee_size": 2})

    @property
    def models_per_round(self) -> int:
        return self.committee_size if self.strategy == "committee" else 1


@dataclass(frozen=True)
class StabilitySpec:
    """Step 6: Langevin MD of the final model and of the `reference` method (gfn2-xtb,
    gfn1-xtb, lj, gaff2) from the first pool configuration: `replicas` runs of `time_ps` at
    each of `step_sizes_fs` (fs) at `temperature_K`."""

    reference: str = "gfn2-xtb"
    step_sizes_fs: list = field(default_factory=lambda: [0.5, 1.0, 2.0])
    replicas: int = 4
    time_ps: float = 0.5
    temperature_K: float = 500.0

    def __post_init__(self) -> None:
        check_types(self)
        _one_of(self.reference, REFERENCE_METHODS, "reference")
        if not isinstance(self.step_sizes_fs, (list, tuple)) or not self.step_sizes_fs or not all(
                isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in self.step_sizes_fs):
            raise ValueError(f"step_sizes_fs: must be a list of positive numbers (fs), got {self.step_sizes_fs!r}")
        object.__setattr__(self, "step_sizes_fs", [float(s) for s in self.step_sizes_fs])
        _at_least(self, {"replicas": 1}, positive=("time_ps", "temperature_K"))


@dataclass(frozen=True)
class CampaignConfig:
    """A whole campaign: the sections above, `training` (the keys of an ``asteroid train``
    YAML but SET_BY_CAMPAIGN; its model and fit also train the stage-1 models of the
    acquisition rounds), `out` (the campaign folder) and `seed` (every random choice)."""

    molecule: MoleculeSpec
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    cheap: CheapSpec = field(default_factory=CheapSpec)
    accurate: AccurateSpec = field(default_factory=AccurateSpec)
    acquisition: AcquisitionSpec = field(default_factory=AcquisitionSpec)
    training: dict = field(default_factory=lambda: {"method": "asteroid"})
    stability: StabilitySpec = field(default_factory=StabilitySpec)
    out: str = "campaign"
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        if not isinstance(self.training, dict):
            raise ValueError(f"training: expected a mapping of keys to values, got {self.training!r}")
        given = sorted(set(SET_BY_CAMPAIGN) & set(self.training))
        if given:
            raise ValueError(f"training.{given[0]}: set by the campaign (its own labels and folder); remove it")
        self.stage_one_config(".")
        self.train_config(self.training.get("method", ""), ".")  # the final one; errors name the key
        if self.cheap.method == self.accurate.method:
            raise ValueError(f"cheap.method and accurate.method are both {self.cheap.method!r}: a campaign needs two "
                             "levels of theory")

    def stage_one_config(self, out, seed_offset: int = 0) -> TrainConfig:
        """The stage-1 models' TrainConfig: method standard with the `training` section's
        STAGE_ONE_KEYS (model, fit, dtype) into `out`, seed + `seed_offset`."""
        return self.train_config("standard", out, seed_offset, {k: self.training[k] for k in STAGE_ONE_KEYS
                                                                 if k in self.training})

    def train_config(self, method: str, out, seed_offset: int = 0, training: dict | None = None) -> TrainConfig:
        """The TrainConfig of the `training` section (or of `training`) with `method` into
        `out`; its data are given to run_stages directly, so `accurate` only names the labels."""
        training = self.training if training is None else training
        values = {**training, "method": method, "out": str(out), "seed": self.seed + seed_offset,
                  "accurate": {"path": "accurate labels of the campaign"}}
        if method != "standard":
            values["cheap"] = {"path": "cheap labels of the campaign"}
        if method == "score_matching":
            values.setdefault("temperature_K", self.sampling.temperature_K)
        return config_from_values(values, where="training")


def _at_least(spec, minimums: dict[str, int], positive: tuple[str, ...] = ()) -> None:
    """ValueError naming the first field of `spec` below its minimum, or not positive."""
    for name, low in minimums.items():
        if getattr(spec, name) < low:
            raise ValueError(f"{name}: must be at least {low}, got {getattr(spec, name)}")
    for name in positive:
        if not getattr(spec, name) > 0:
            raise ValueError(f"{name}: must be positive, got {getattr(spec, name)}")


def _one_of(value: str, choices, key: str) -> None:
    """ValueError naming `key` when `value` is not one of `choices`."""
    if value not in choices:
        raise ValueError(f"{key}: must be one of {', '.join(choices)}, got {value!r}")


def _labeler(method: str, key: str) -> None:
    """ValueError naming `key` for a labelling method get_labeler does not know."""
    try:
        get_labeler(method)
    except ValueError as error:
        raise ValueError(f"{key}: {error}") from None


SECTIONS = {"molecule": MoleculeSpec, "sampling": SamplingSpec, "cheap": CheapSpec, "accurate": AccurateSpec,
            "acquisition": AcquisitionSpec, "stability": StabilitySpec}


def campaign_from_values(values, folder: Path = Path("."), where: str = "campaign") -> CampaignConfig:
    """The CampaignConfig of a campaign YAML's plain values; `molecule.xyz` becomes relative
    to `folder`; every error begins with `where` (the file) and names the section and key."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping at the top level")
    if "molecule" not in values:
        raise ValueError(f"{where}: molecule: missing (smiles: ... or xyz: ...)")
    sections = {key: build_section(cls, values[key], f"{where}: {key}") for key, cls in SECTIONS.items()
                if key in values}
    if sections["molecule"].xyz and not Path(sections["molecule"].xyz).is_absolute():
        sections["molecule"] = replace(sections["molecule"], xyz=str(folder / sections["molecule"].xyz))
    return build_section(CampaignConfig, {**values, **sections}, where)


def load_campaign(path) -> CampaignConfig:
    """Read and validate a campaign YAML (errors name the file and the key)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such config file")
    return campaign_from_values(read_yaml(path) or {}, path.parent, str(path))


def step_settings(config: CampaignConfig) -> dict:
    """{step: the config values its outputs depend on}, as JSON values (a later step's
    outputs also depend on the earlier steps', which are checked first)."""
    plain = asdict(config)
    stage_one = {key: config.training.get(key) for key in STAGE_ONE_KEYS}
    return {"sample": {"molecule": plain["molecule"], "sampling": plain["sampling"], "seed": config.seed},
            "cheap labels": {"cheap.method": config.cheap.method},
            "seed set": {"accurate": plain["accurate"], "seed": config.seed},
            "acquisition": {"acquisition": plain["acquisition"], "training": stage_one, "seed": config.seed},
            "final training": {"training": plain["training"], "cheap.val": config.cheap.val, "seed": config.seed},
            "stability": {"stability": plain["stability"], "seed": config.seed}}


__all__ = ["CampaignConfig", "load_campaign", "campaign_from_values", "step_settings"]
