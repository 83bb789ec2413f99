"""The one place that imports mace-torch, without leaving its side effect on ``torch.load``.

mace-torch's ``mace/__init__.py`` sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole
process and its children, which turns every later ``torch.load`` into an unpickler that
runs code from the file. e3nn, imported by ``mace.modules``, needs that setting once, to
read its own ``constants.pt`` under torch >= 2.6. So the variable is set for the duration
of the import only and put back as the user had it (unset, or their own value) afterwards.
EGNN models do not need mace at all and never call this.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

UNSAFE_LOAD_VARIABLE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def import_mace():
    """(mace.modules, e3nn.o3), with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` restored afterwards."""
    before = os.environ.get(UNSAFE_LOAD_VARIABLE)
    try:
        os.environ[UNSAFE_LOAD_VARIABLE] = "1"  # e3nn's constants.pt is a pickle of its own
        # e3nn's torch.load warns about that variable; mace prints a notice on stdout, which
        # would spoil machine-readable output such as `asteroid evaluate --json`
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore", UserWarning)
            import mace.modules
            from e3nn import o3
    finally:
        if before is None:
            os.environ.pop(UNSAFE_LOAD_VARIABLE, None)
        else:
            os.environ[UNSAFE_LOAD_VARIABLE] = before
    return mace.modules, o3
