"""Notebooks as tests: run one or a repository of them, locally or in a lab; keep them clean."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from library.errors import CheckFailed, UserError
from library.notebooks import runs
from library.notebooks.clean import check_clean as check
from library.notebooks.discovery import listing
from library.notebooks.params import parse_parameters
from library.toolbox import command

log = logging.getLogger(__name__)


@command(aliases={"parameters": "-p"})
def run(
    path: Path,
    /,
    parameters: list[str] | None = None,
    where: Literal["local", "lab"] = "local",
    user: str | None = None,
    timeout: float = 300.0,
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Run one notebook, locally with papermill or cell by cell in a user's lab kernel.

    Locally the executed notebook is saved in the artifact dir. A failing cell is reported with
    the notebook path, its cell number (counting every cell from 1) and the error.

    Args:
        path: The notebook.
        parameters: ``NAME=VALUE`` (repeatable): injected after the cell tagged ``parameters``.
        where: ``local`` (papermill in this process) or ``lab`` (the user's running lab).
        user: Bot user whose lab runs it (``--where lab``); its lab must be running.
        timeout: Seconds each cell may take.
        hub_url: Hub base URL for ``--where lab`` ($BOSUN_HUB_URL, else the sandbox).
        token_file: Admin token, or ``user: token`` lines ($BOSUN_TOKEN_FILE, else the sandbox).
    """
    if not path.is_file():
        raise UserError(f"notebook {path}: no such file")
    params = parse_parameters(parameters, option="--parameters/-p")
    (outcome,) = runs.run_notebooks(
        [(path, path.name)],
        params,
        where,
        user=user,
        timeout=timeout,
        max_executions=1,
        hub_url=hub_url,
        token_file=token_file,
        keep_lab=True,
    )
    if not outcome.ok:
        raise CheckFailed(outcome.error)
    return outcome.to_dict()


@command(aliases={"list_only": "--list"})
def run_repo(
    source: str,
    /,
    ref: str | None = None,
    where: Literal["local", "lab"] = "local",
    user: str | None = None,
    exclude_dir: list[str] | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    services: str | None = None,
    name_convention: bool = False,
    list_only: bool = False,
    parameters: list[str] | None = None,
    max_executions: int = 25,
    timeout: float = 300.0,
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Run every notebook of a directory or git repository that the collection rules keep.

    Rules, as mobu applies them: every ``**/*.ipynb``; the repository's own ``mobu.yaml``
    (``collection_rules``, ``exclude_dirs``) and ``--exclude-dir`` (relative to the root);
    then ``--include``/``--exclude`` globs; with ``--services``, only notebooks whose
    ``metadata.mobu.required_applications`` (or ``metadata.bosun.required_services``) are all
    deployed. SQR-080's file-name rule (``<service>_*.ipynb`` needs ``<service>``) applies only
    with ``--name-convention`` or when the repository's ``bosun.yaml`` turns it on. ``--list``
    prints what would run and which rule skipped each other notebook, and runs nothing.
    `discovery.json` lists what was kept and why the rest was skipped; `notebooks.json` every
    outcome. In a lab, notebooks share one kernel and the lab is respawned after
    ``--max-executions`` of them; the lab is deleted at the end.

    Args:
        source: Directory, or git URL (cloned once per artifact tree).
        ref: Git branch, tag or commit to check out.
        where: ``local`` (papermill) or ``lab`` (one user's lab, like mobu's NotebookRunner).
        user: Bot user whose lab runs them (``--where lab``).
        exclude_dir: Directory to skip, relative to the root, as mobu's exclude_dirs (repeatable).
        include: Glob a notebook must match (repeatable).
        exclude: Glob of notebooks to skip (repeatable).
        services: Comma-separated deployed services, e.g. ``nublado,tap``.
        name_convention: Apply SQR-080's file-name rule (a repo's ``bosun.yaml`` may too).
        list_only: Print the notebooks that would run and why each other one is skipped; run
            nothing.
        parameters: ``NAME=VALUE`` given to every notebook (repeatable).
        max_executions: Notebooks per lab before it is respawned (``--where lab``).
        timeout: Seconds each cell may take.
        hub_url: Hub base URL for ``--where lab`` ($BOSUN_HUB_URL, else the sandbox).
        token_file: Admin token, or ``user: token`` lines ($BOSUN_TOKEN_FILE, else the sandbox).
    """
    if max_executions < 1:
        raise UserError(f"--max-executions {max_executions}: give at least 1")
    deployed = [s.strip() for s in services.split(",") if s.strip()] if services else None
    rules: dict[str, Any] = {"exclude_dirs": exclude_dir, "include": include, "exclude": exclude}
    if name_convention:
        rules["name_convention"] = True
    if list_only:
        found = runs.discover_source(source, ref, {**rules, "services": deployed})
        print(listing(found), end="")
        return found.to_dict()
    return runs.run_repo(
        source,
        ref,
        parse_parameters(parameters),
        where,
        rules={**rules, "services": deployed},
        user=user,
        timeout=timeout,
        max_executions=max_executions,
        hub_url=hub_url,
        token_file=token_file,
    )


@command
def check_clean(paths: list[str], /, fix: bool = False) -> dict:
    """Fail when notebooks carry outputs, execution counts or widget state (SQR-080 "Outputs").

    Args:
        paths: Notebooks or directories to check (repeatable).
        fix: Clear what was found, in place, instead of failing.
    """
    targets = [Path(p) for p in paths]
    for p in targets:
        if not p.exists():
            raise UserError(f"--paths {p}: no such file or directory")
    dirt = check(targets, fix=fix)
    for d in dirt:
        log.info("%s%s", "fixed " if fix else "", d)
    files = sorted({d.path for d in dirt})
    if dirt and not fix:
        raise CheckFailed(
            f"{len(files)} notebook(s) not clean: {', '.join(files)} "
            "(run notebook check_clean --fix)"
        )
    return {"dirty_files": files, "findings": [str(d) for d in dirt], "fixed": fix and bool(dirt)}


@command
def ci(
    repo: Path,
    /,
    base_ref: str = "origin/main",
    head_ref: str = "HEAD",
    parameters: list[str] | None = None,
    timeout: float = 300.0,
    where: Literal["local", "lab"] = "local",
    user: str | None = None,
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Run the notebooks a change touches and check they are clean; JUnit per notebook.

    The changed notebooks are those ``git diff --name-only BASE...HEAD`` lists. Each one is run
    (locally with papermill, or in one bot user's lab as mobu runs notebooks) and checked for
    committed outputs; `junit.xml` in the artifact dir has a ``run`` and a ``clean`` testcase
    per notebook. A lab is deleted at the end.

    Args:
        repo: Git checkout holding the change.
        base_ref: Ref the change is merged into (e.g. ``origin/main``).
        head_ref: Ref of the change.
        parameters: ``NAME=VALUE`` given to every notebook (repeatable).
        timeout: Seconds each cell may take.
        where: ``local`` (papermill) or ``lab`` (the platform, in ``--user``'s lab).
        user: Bot user whose lab runs them (``--where lab``).
        hub_url: Hub base URL for ``--where lab`` ($BOSUN_HUB_URL, else the sandbox).
        token_file: Admin token file for ``--where lab`` ($BOSUN_TOKEN_FILE, else the sandbox).
    """
    return runs.run_changed(
        repo,
        base_ref,
        head_ref,
        parse_parameters(parameters),
        timeout,
        where=where,
        user=user,
        hub_url=hub_url,
        token_file=token_file,
    )
