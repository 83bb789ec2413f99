"""``asteroid campaign``: the whole workflow for a new molecule in one resumable command —
sample a pool, label it cheaply, label a random seed set accurately, acquisition rounds
(stage-1 model, ``select``, accurate labels), final training with the chosen method, an MD
stability check against a reference method, and a report. See docs/campaign.md."""

from .config import CampaignConfig, campaign_from_values, load_campaign
from .run import run_campaign

__all__ = ["CampaignConfig", "campaign_from_values", "load_campaign", "run_campaign"]
