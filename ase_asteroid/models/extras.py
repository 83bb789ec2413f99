"""What a model carries besides its network, as one typed part: the prior of its auxiliary
head (an LJ prior, whose parameters are tensors of the model's state, or a labelling
method such as GFN2-xTB), the Δ-learning baseline's name, the training graphs' Laplacian
spectra per atom count (for radius refinement) and the training history. The checkpoint
stores it with :meth:`ModelExtras.metadata` and restores it with
:meth:`ModelExtras.restore`, so it never needs to know the features by name."""

from __future__ import annotations

from torch import nn

from .prior import LJPrior, MethodPrior, prior_from_metadata


class ModelExtras(nn.Module):
    """prior: where the prior head's labels come from (LJPrior or MethodPrior) or None;
    prior_train_loss: the prior head's force loss (mean squared error, (eV/Å)²) on its
    training structures after training, test-time training's reference for structures the
    model has learnt (refinement/ttt.py), or None;
    delta_baseline: the cheap method (a labeller name) whose energy and forces are added at
    inference, or None; graph_spectrum: radius refinement's reference
    (refinement/radius.py: training_spectra) or None; history: one record per training stage."""

    def __init__(self) -> None:
        super().__init__()
        self.prior: LJPrior | MethodPrior | None = None
        self.prior_train_loss: float | None = None
        self.delta_baseline: str | None = None
        self.graph_spectrum: dict | None = None
        self.history: list[dict] = []

    def metadata(self) -> dict:
        """Plain JSON-able values (the prior's tensors travel in the model's state)."""
        return {"history": self.history, "delta_baseline": self.delta_baseline,
                "prior": self.prior.metadata() if self.prior is not None else None,
                "prior_train_loss": self.prior_train_loss,
                "graph_spectrum": self.graph_spectrum}

    def restore(self, meta: dict) -> None:
        """Set what :meth:`metadata` wrote (a prior is rebuilt empty; its tensors come with the state)."""
        if meta.get("prior"):
            self.prior = prior_from_metadata(meta["prior"])
        self.prior_train_loss = meta.get("prior_train_loss")
        self.delta_baseline = meta.get("delta_baseline")
        self.graph_spectrum = meta.get("graph_spectrum")
        self.history = list(meta.get("history", []))
