"""Project configuration: show the effective config and where its values came from."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from library import config as cfgmod
from library import yamlio
from library.cli import load_config_from_cli
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

    References (``@key``, ``{@key}``) are shown resolved; secret-file references (``*$@key``)
    are shown as written, never read. Secret values are masked by where they came from (see
    docs/config.md). With --explain KEY, print instead the layers that set KEY (or the leaves
    under it) in the order they were applied, then the references reading KEY follows.

    Args:
        project: Project name (projects/NAME/testing/config.yaml).
        config: A config file, instead of --project.
        preset: Preset to apply (repeatable, in order).
        var: Override 'key: value' (repeatable, applied after presets).
        explain: Key whose layers and references to print.
    """
    cfg = load_config_from_cli(project, config, preset or [], var or [])
    if explain:
        rows: list[dict[str, Any]] = [
            {"layer": layer, "key": leaf, "value": cfgmod.mask(value)}
            for layer, leaf, value in cfg.explain(explain)
        ]
        rows += [cfgmod.mask(step) for step in cfg.reference_chain(explain)]
        sys.stdout.write(yamlio.dumps(rows))
        return
    sys.stdout.write(yamlio.dumps(cfgmod.mask(cfg.resolved())))
