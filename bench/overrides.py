"""``KEY=VALUE`` command-line overrides (values read as YAML), shared by the bench scripts."""

from __future__ import annotations

import yaml


def key_values(items: list[str]) -> dict:
    """{"lr=0.01", "schedule=cosine"} -> {"lr": 0.01, "schedule": "cosine"}; exits naming a malformed item."""
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        values[key] = yaml.safe_load(value)
    return values
