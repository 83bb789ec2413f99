"""The refinement options of every command that runs a model (light: no torch import)."""

from __future__ import annotations

from .settings import CHOICES, RefineSettings, TTTSettings

_DEFAULTS = TTTSettings()


def add_refine_arguments(parser) -> None:
    """--refine and the test-time-training options (defaults from TTTSettings)."""
    parser.add_argument("--refine", choices=CHOICES, help="test-time refinement of a copy of the model "
                        "(radius: cutoff by graph spectrum; ttt: training on the prior head)")
    parser.add_argument("--ttt-steps", type=int, default=_DEFAULTS.steps, help="test-time training steps")
    parser.add_argument("--ttt-lr", type=float, default=_DEFAULTS.lr, help="test-time training learning rate")
    parser.add_argument("--ttt-optimizer", choices=["adam", "sgd"], default=_DEFAULTS.optimizer)
    parser.add_argument("--ttt-gate", type=float, default=_DEFAULTS.gate,
                        help="adapt only if the prior head's loss on the structures exceeds this many times its "
                             "training loss (0: always)")


def ttt_settings(args) -> TTTSettings:
    return TTTSettings(args.ttt_steps, args.ttt_lr, args.ttt_optimizer, gate=args.ttt_gate)


def refine_settings(args, every: int = 0) -> RefineSettings:
    """The RefineSettings of parsed command-line arguments."""
    return RefineSettings.parse(args.refine, ttt_settings(args), every)
