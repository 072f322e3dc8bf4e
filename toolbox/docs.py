"""Documentation: the toolbox reference generated from the commands' docstrings."""

from __future__ import annotations

from pathlib import Path

from library.config import repo_root
from library.errors import CheckFailed
from library.reference import render
from library.toolbox import command


@command(record=False)
def generate(output: Path = Path("docs/toolbox.md"), check: bool = False) -> None:
    """Write the toolbox reference (every group, command and argument) as Markdown.

    Args:
        output: File to write, relative to the repository root unless absolute.
        check: Write nothing; fail when the file differs from what would be generated.
    """
    path = output if output.is_absolute() else repo_root() / output
    text = render()
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            raise CheckFailed(f"{output} is out of date: run ./run_toolbox.py docs generate")
        return
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
