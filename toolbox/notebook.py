"""Notebooks as tests: run one or a repository of them, locally or in a lab; keep them clean."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

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
    from library.errors import CheckFailed, UserError
    from library.notebooks.params import parse_parameters

    if not path.is_file():
        raise UserError(f"notebook {path}: no such file")
    params = parse_parameters(parameters, option="--parameters/-p")
    notebooks = [(path, path.name)]
    outcomes = _run_set(
        notebooks, params, where, user, timeout, 1, hub_url, token_file, keep_lab=True
    )
    outcome = outcomes[0]
    if not outcome["ok"]:
        raise CheckFailed(outcome["error"])
    return outcome


@command
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
    parameters: list[str] | None = None,
    max_executions: int = 25,
    timeout: float = 300.0,
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Run every notebook of a directory or git repository that the collection rules keep.

    Rules: every ``**/*.ipynb``, minus excluded directories, only ``--include`` globs when given,
    minus ``--exclude`` globs; with ``--services``, only notebooks whose required services
    (``metadata.bosun.required_services``, mobu's ``metadata.mobu.required_applications``, or the
    ``<service>_*.ipynb`` name) are all deployed. `discovery.json` lists what was kept and why
    the rest was skipped; `notebooks.json` every outcome. In a lab, notebooks share one kernel
    and the lab is respawned after ``--max-executions`` of them; the lab is deleted at the end.

    Args:
        source: Directory, or git URL (cloned once per artifact tree).
        ref: Git branch, tag or commit to check out.
        where: ``local`` (papermill) or ``lab`` (one user's lab, like mobu's NotebookRunner).
        user: Bot user whose lab runs them (``--where lab``).
        exclude_dir: Directory name or relative path to skip (repeatable).
        include: Glob a notebook must match (repeatable).
        exclude: Glob of notebooks to skip (repeatable).
        services: Comma-separated deployed services, e.g. ``nublado,tap``.
        parameters: ``NAME=VALUE`` given to every notebook (repeatable).
        max_executions: Notebooks per lab before it is respawned (``--where lab``).
        timeout: Seconds each cell may take.
        hub_url: Hub base URL for ``--where lab`` ($BOSUN_HUB_URL, else the sandbox).
        token_file: Admin token, or ``user: token`` lines ($BOSUN_TOKEN_FILE, else the sandbox).
    """
    from library import env
    from library.errors import CheckFailed, UserError
    from library.jupyter.context import write_json
    from library.notebooks.discovery import discover
    from library.notebooks.params import parse_parameters
    from library.notebooks.source import checkout

    if max_executions < 1:
        raise UserError(f"--max-executions {max_executions}: give at least 1")
    params = parse_parameters(parameters)
    deployed = [s.strip() for s in services.split(",") if s.strip()] if services else None
    root = checkout(source, ref, _cache_dir(env.artifact_dir()))
    found = discover(
        root, exclude_dirs=exclude_dir, include=include, exclude=exclude, services=deployed
    )
    write_json("discovery.json", found.to_dict())
    for rel, why in found.skipped.items():
        log.info("skip %s: %s", rel, why)
    if not found.selected:
        raise UserError(
            f"notebook source {source}: no notebook left after the collection rules "
            "(see discovery.json)"
        )
    notebooks = [(p, found.relative(p)) for p in found.selected]
    outcomes = _run_set(
        notebooks, params, where, user, timeout, max_executions, hub_url, token_file, keep_lab=False
    )
    failed = [o for o in outcomes if not o["ok"]]
    summary = {
        "source": source,
        "ref": ref,
        "notebooks": len(outcomes),
        "failed": len(failed),
        "skipped": len(found.skipped),
    }
    if failed:
        raise CheckFailed(
            f"{len(failed)} of {len(outcomes)} notebooks failed: "
            + "; ".join(o["error"] for o in failed)[:1000]
        )
    return summary


def _cache_dir(artifact_dir: Path) -> Path:
    """The git cache at the top of the artifact tree, so every command of a run shares it."""
    import os

    top = os.environ.get("ARTIFACT_DIR")
    base = Path(top) if top else artifact_dir
    return base / "_cache" / "git"


def _run_set(
    notebooks, params, where, user, timeout, max_executions, hub_url, token_file, *, keep_lab: bool
) -> list[dict]:
    from library import env
    from library.errors import UserError
    from library.jupyter.context import recorder, write_json

    out_dir = env.artifact_dir()
    with recorder("notebook", "notebook") as rec:
        if where == "local":
            from library.notebooks.repo import run_local_set

            outcomes = run_local_set(
                notebooks, out_dir / "executed", parameters=params, timeout=timeout, recorder=rec
            )
        else:
            if not user:
                raise UserError("--where lab needs --user: the bot user whose lab runs them")
            outcomes = _run_in_lab(
                notebooks, params, user, timeout, max_executions, hub_url, token_file, rec, keep_lab
            )
    data = [o.to_dict() for o in outcomes]
    write_json("notebooks.json", data)
    tracebacks = [
        f"== {o.notebook} cell {o.cell}\n{o.traceback}\n" for o in outcomes if o.traceback
    ]
    if tracebacks:
        (out_dir / "tracebacks.txt").write_text("".join(tracebacks), encoding="utf-8")
    for o in outcomes:
        if not o.ok:
            log.error("%s", o.error)
    return data


def _run_in_lab(
    notebooks, params, user, timeout, max_executions, hub_url, token_file, rec, keep_lab
):
    import asyncio

    from library.errors import CheckFailed, UserError
    from library.jupyter.context import user_lab
    from library.jupyter.errors import JupyterError
    from library.jupyter.platform import resolve
    from library.notebooks.repo import run_lab_set

    platform = resolve(hub_url, token_file)

    async def go():
        async with user_lab(platform, user, rec) as lab:
            if keep_lab and not await lab.lab_running():
                raise UserError(f"--user {user}: no running lab; run nublado spawn_lab first")
            try:
                return await run_lab_set(
                    lab,
                    notebooks,
                    parameters=params,
                    cell_timeout=timeout,
                    max_executions=max_executions,
                    recorder=rec,
                )
            finally:
                if not keep_lab:
                    await lab.delete_lab()

    try:
        return asyncio.run(go())
    except JupyterError as exc:
        raise CheckFailed(exc.one_line()) from None


@command
def check_clean(paths: list[str], /, fix: bool = False) -> dict:
    """Fail when notebooks carry outputs, execution counts or widget state (SQR-080 "Outputs").

    Args:
        paths: Notebooks or directories to check (repeatable).
        fix: Clear what was found, in place, instead of failing.
    """
    from library.errors import CheckFailed, UserError
    from library.notebooks.clean import check_clean as check

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
) -> dict:
    """Run the notebooks a change touches and check they are clean; JUnit per notebook.

    The changed notebooks are those ``git diff --name-only BASE...HEAD`` lists. Each one is run
    locally with papermill and checked for committed outputs; `junit.xml` in the artifact dir
    has a ``run`` and a ``clean`` testcase per notebook.

    Args:
        repo: Git checkout holding the change.
        base_ref: Ref the change is merged into (e.g. ``origin/main``).
        head_ref: Ref of the change.
        parameters: ``NAME=VALUE`` given to every notebook (repeatable).
        timeout: Seconds each cell may take.
    """
    from library import env
    from library.errors import CheckFailed, UserError
    from library.jupyter.context import recorder, write_json
    from library.notebooks.ci import changed_notebooks, junit
    from library.notebooks.clean import check_clean as check
    from library.notebooks.params import parse_parameters
    from library.notebooks.repo import run_local_set

    if not (repo / ".git").exists():
        raise UserError(f"notebook ci {repo}: not a git checkout")
    params = parse_parameters(parameters)
    changed = changed_notebooks(repo, base_ref, head_ref)
    write_json("changed.json", changed)
    if not changed:
        log.info("no notebook changed between %s and %s", base_ref, head_ref)
        (env.artifact_dir() / "junit.xml").write_text(junit("notebook_ci", []))
        return {"changed": 0, "failed": 0}
    notebooks = [(repo / rel, rel) for rel in changed]
    with recorder("notebook_ci", "notebook") as rec:
        outcomes = run_local_set(
            notebooks,
            env.artifact_dir() / "executed",
            parameters=params,
            timeout=timeout,
            recorder=rec,
        )
    cases = []
    failed = []
    for (path, rel), outcome in zip(notebooks, outcomes, strict=True):
        cases.append(
            {
                "name": f"{rel} run",
                "classname": "notebook_ci.run",
                "time": outcome.duration_s,
                "failure": "" if outcome.ok else outcome.error,
                "details": outcome.traceback,
            }
        )
        dirt = check([path])
        cases.append(
            {
                "name": f"{rel} clean",
                "classname": "notebook_ci.clean",
                "time": 0.0,
                "failure": "; ".join(str(d) for d in dirt)[:500] if dirt else "",
                "details": "\n".join(str(d) for d in dirt),
            }
        )
        if not outcome.ok:
            failed.append(outcome.error)
        if dirt:
            failed.append(f"{rel}: not clean ({len(dirt)} finding(s))")
    (env.artifact_dir() / "junit.xml").write_text(junit("notebook_ci", cases), encoding="utf-8")
    write_json("notebooks.json", [o.to_dict() for o in outcomes])
    if failed:
        raise CheckFailed(
            f"{len(failed)} problem(s) in {len(changed)} changed notebook(s): "
            + "; ".join(failed)[:1000]
        )
    return {"changed": len(changed), "failed": 0}
