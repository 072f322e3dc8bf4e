"""Project configuration: show the effective config and where its values came from."""

from __future__ import annotations

import sys
from pathlib import Path

from library.toolbox import command


@command(record=False)
def show(
    project: str | None = None,
    config: Path | None = None,
    preset: list[str] | None = None,
    var: list[str] | None = None,
    explain: str | None = None,
) -> None:
    """Print the effective config (presets and overrides applied) as YAML on stdout.

    Secrets are masked. With --explain KEY, print instead the layers that set KEY (or the
    leaves under it), in the order they were applied.

    Args:
        project: Project name (projects/NAME/testing/config.yaml).
        config: A config file, instead of --project.
        preset: Preset to apply (repeatable, in order).
        var: Override 'dotted.key: value' (repeatable, applied after presets).
        explain: Dotted key whose layers to print.
    """
    from library import redact, yamlio
    from library.cli import load_config_from_cli

    cfg = load_config_from_cli(project, config, preset or [], var or [])
    if explain:
        rows = [
            {"layer": layer, "key": leaf, "value": redact.redact_data(value, leaf)}
            for layer, leaf, value in cfg.explain(explain)
        ]
        sys.stdout.write(yamlio.dumps(rows))
        return
    sys.stdout.write(yamlio.dumps(redact.redact_data(cfg.effective())))
