"""Write a benchmark's table into its own section of docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, name: str, command: str, body: str) -> None:
    """Replace (or append) the section between markers for `name`, with the command that made it."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    section = f"{begin}\n```\n{command}\n```\n\n{body}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text}\n{section}\n"
    path.write_text(text)


def report(text: str, name: str, command: str, write: Path | None) -> None:
    """Print a benchmark's table and, if `write` is given, put it into that markdown file."""
    print(text)
    if write:
        write_section(write, name, command, text)
