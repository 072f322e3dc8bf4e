"""Notebook runs for commands: a set of notebooks locally or in one user's lab, a repository
after its collection rules, and the changed notebooks of a git change as a CI check.

Each writes its outcome files (``notebooks.json``, ``tracebacks.txt``, ``discovery.json``,
``changed.json``, ``junit.xml``) and its events into the current artifact dir, and raises
``CheckFailed`` naming every failure. The ``notebook`` toolbox commands are thin over these.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

from library import artifacts, env, junit, labs
from library.errors import CheckFailed, UserError
from library.jupyter.errors import JupyterError
from library.jupyter.platform import resolve
from library.notebooks.ci import changed_notebooks
from library.notebooks.clean import check_clean
from library.notebooks.discovery import Discovery, discover
from library.notebooks.files import outside
from library.notebooks.repo import Outcome, run_lab_set, run_local_set
from library.notebooks.source import checkout

log = logging.getLogger(__name__)

Where = Literal["local", "lab"]


def run_notebooks(
    notebooks: list[tuple[Path, str]],
    parameters: dict[str, Any],
    where: Where,
    *,
    user: str | None = None,
    timeout: float = 300.0,
    max_executions: int = 25,
    hub_url: str | None = None,
    token_file: Path | None = None,
    keep_lab: bool = False,
    flock: str = "notebook",
) -> list[Outcome]:
    """Run NOTEBOOKS (path, label) and write their outcomes (``notebooks.json``), in order.

    In a lab they share one kernel, the lab is respawned after MAX_EXECUTIONS of them, and it is
    deleted at the end unless KEEP_LAB (then it must already be running).
    """
    out_dir = env.artifact_dir()
    with artifacts.events_recorder(flock, "notebook") as rec:
        if where == "local":
            outcomes = run_local_set(
                notebooks,
                out_dir / "executed",
                parameters=parameters,
                timeout=timeout,
                recorder=rec,
            )
        else:
            if not user:
                raise UserError("--where lab needs --user: the bot user whose lab runs them")
            outcomes = _run_in_lab(
                notebooks,
                parameters,
                user,
                timeout,
                max_executions,
                hub_url,
                token_file,
                rec,
                keep_lab,
            )
    artifacts.write_json("notebooks.json", [o.to_dict() for o in outcomes])
    tracebacks = [
        f"== {o.notebook} cell {o.cell}\n{o.traceback}\n" for o in outcomes if o.traceback
    ]
    if tracebacks:
        (out_dir / "tracebacks.txt").write_text("".join(tracebacks), encoding="utf-8")
    for o in outcomes:
        if not o.ok:
            log.error("%s", o.error)
    return outcomes


def _run_in_lab(
    notebooks, parameters, user, timeout, max_executions, hub_url, token_file, rec, keep_lab
):
    access = resolve(hub_url, token_file)

    async def go():
        async with labs.user_lab(access, user, rec) as lab:
            if keep_lab and not await lab.lab_running():
                raise UserError(f"--user {user}: no running lab; run nublado spawn_lab first")
            try:
                return await run_lab_set(
                    lab,
                    notebooks,
                    parameters=parameters,
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


def discover_source(source: str, ref: str | None, rules: dict[str, Any] | None) -> Discovery:
    """SOURCE (dir or git URL, cloned once per artifact tree) and what its RULES keep."""
    return discover(checkout(source, ref, artifacts.cache_dir("git")), **(rules or {}))


def run_repo(
    source: str,
    ref: str | None,
    parameters: dict[str, Any],
    where: Where,
    *,
    rules: dict[str, Any] | None = None,
    **run_options: Any,
) -> dict:
    """Every notebook of SOURCE (dir or git URL) the collection RULES keep, run as a set.

    RULES are ``discovery.discover``'s keywords (``exclude_dirs``, ``include``, ``exclude``,
    ``services``...); ``discovery.json`` lists what was kept and why the rest was skipped.
    RUN_OPTIONS go to ``run_notebooks``.
    """
    found = discover_source(source, ref, rules)
    artifacts.write_json("discovery.json", found.to_dict())
    for rel, why in found.skipped.items():
        log.info("skip %s: %s", rel, why)
    if not found.selected:
        raise UserError(
            f"notebook source {source}: no notebook left after the collection rules "
            "(see discovery.json)"
        )
    notebooks = [(p, found.relative(p)) for p in found.selected]
    outcomes = run_notebooks(notebooks, parameters, where, keep_lab=False, **run_options)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise CheckFailed(
            f"{len(failed)} of {len(outcomes)} notebooks failed: "
            + "; ".join(o.error for o in failed)[:1000]
        )
    return {
        "source": source,
        "ref": ref,
        "notebooks": len(outcomes),
        "failed": 0,
        "skipped": len(found.skipped),
    }


def run_changed(
    repo: Path,
    base_ref: str,
    head_ref: str,
    parameters: dict[str, Any],
    timeout: float,
    *,
    where: Where = "local",
    user: str | None = None,
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Run the notebooks changed between BASE_REF and HEAD_REF (locally or in USER's lab) and
    check they are clean.

    ``junit.xml`` gets a ``run`` and a ``clean`` testcase per notebook.
    """
    if where == "lab" and not user:
        raise UserError("--where lab needs --user: the bot user whose lab runs the notebooks")
    if not (repo / ".git").exists():
        raise UserError(f"notebook ci {repo}: not a git checkout")
    changed = changed_notebooks(repo, base_ref, head_ref)
    artifacts.write_json("changed.json", changed)
    junit_path = env.artifact_dir() / artifacts.JUNIT
    if not changed:
        log.info("no notebook changed between %s and %s", base_ref, head_ref)
        junit.write(junit_path, junit.suite("notebook_ci", []), wrap=True)
        return {"changed": 0, "failed": 0}
    cases: list[junit.Case] = []
    failed: list[str] = []
    notebooks = []
    for rel in changed:
        why = outside(repo, repo / rel)
        if why:
            # A change that links a notebook to a file outside the repository is refused, not
            # run: the check fails naming it.
            cases.append(junit.Case("notebook_ci.run", f"{rel} run", 0.0, f"{rel}: {why}"))
            failed.append(f"{rel}: {why}")
        else:
            notebooks.append((repo / rel, rel))
    outcomes = run_notebooks(
        notebooks,
        parameters,
        where,
        user=user,
        timeout=timeout,
        hub_url=hub_url,
        token_file=token_file,
        flock="notebook_ci",
    )
    for (path, rel), outcome in zip(notebooks, outcomes, strict=True):
        error = None if outcome.ok else outcome.error
        cases.append(
            junit.Case(
                "notebook_ci.run", f"{rel} run", outcome.duration_s, error, outcome.traceback
            )
        )
        dirt = check_clean([path])
        why = "; ".join(str(d) for d in dirt)[:500] if dirt else None
        cases.append(
            junit.Case(
                "notebook_ci.clean", f"{rel} clean", 0.0, why, "\n".join(str(d) for d in dirt)
            )
        )
        if error:
            failed.append(error)
        if dirt:
            failed.append(f"{rel}: not clean ({len(dirt)} finding(s))")
    junit.write(junit_path, junit.suite("notebook_ci", cases), wrap=True)
    if failed:
        raise CheckFailed(
            f"{len(failed)} problem(s) in {len(changed)} changed notebook(s): "
            + "; ".join(failed)[:1000]
        )
    return {"changed": len(changed), "failed": 0}
