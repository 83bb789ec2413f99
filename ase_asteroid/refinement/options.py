"""The refinement options of every command that runs a model (light: no torch import)."""

from __future__ import annotations

CHOICES = ("radius", "ttt", "radius+ttt")


def add_refine_arguments(parser) -> None:
    """--refine and the test-time-training options."""
    parser.add_argument("--refine", choices=CHOICES, help="test-time refinement of a copy of the model "
                        "(radius: cutoff by graph spectrum; ttt: training on the LJ prior head)")
    parser.add_argument("--ttt-steps", type=int, default=50, help="test-time training steps")
    parser.add_argument("--ttt-lr", type=float, default=1e-4, help="test-time training learning rate")
    parser.add_argument("--ttt-optimizer", choices=["adam", "sgd"], default="adam")


def ttt_settings(args):
    from .ttt import TTTSettings
    return TTTSettings(args.ttt_steps, args.ttt_lr, args.ttt_optimizer)
