"""The ``service.triggers`` section: rules, the run queue, the results store, GitHub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from library.triggers.github import DEFAULT_API_URL, AppTokens, CheckRuns

if TYPE_CHECKING:
    from library.triggers.github import CheckRuns


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GitHubSettings(_Strict):
    # The webhook's secret (X-Hub-Signature-256); without it the webhook answers 503.
    secret_file: Path | None = None
    # Check runs (rules with `report: github_check`): the API base URL, and either a token
    # file (a personal token, or an installation token kept fresh elsewhere) or a GitHub
    # App (its id and private key; the installation found from the repository unless given).
    api_url: str = DEFAULT_API_URL
    token_file: Path | None = None
    app_id: int | None = Field(None, ge=1)
    private_key_file: Path | None = None
    installation_id: int | None = Field(None, ge=1)
    check_name: str = "bosun notebooks"
    # mobu's refresh app: a push to the branch a notebook-runner flock uses refreshes it.
    refresh: bool = True

    @model_validator(mode="after")
    def _one_credential(self) -> GitHubSettings:
        if (self.app_id is None) != (self.private_key_file is None):
            raise ValueError("a GitHub App needs both app_id and private_key_file")
        if self.token_file is not None and self.app_id is not None:
            raise ValueError("give token_file or a GitHub App (app_id, private_key_file), not both")
        return self

    def check_runs(self) -> CheckRuns | None:
        """The check-run client these settings give, or None (no credentials: no reports)."""
        if self.token_file is not None:
            return CheckRuns.from_file(self.api_url, self.token_file, self.check_name)
        if self.app_id is not None and self.private_key_file is not None:
            tokens = AppTokens.from_file(
                self.api_url, self.app_id, self.private_key_file, self.installation_id
            )
            return CheckRuns(self.api_url, tokens, self.check_name)
        return None


class TriggerSettings(_Strict):
    rules: Path | None = None  # no rules: events are recorded, nothing is queued
    # The run queue: a SQLite path or postgresql:// URL; null: STATE_DIR/queue.sqlite.
    queue_store: str | None = None
    # The results store; null: $BOSUN_RESULTS_STORE, else artifacts/results.sqlite.
    results_store: str | None = None
    # Where each run's artifact dir is made; null: STATE_DIR/runs.
    artifacts_root: Path | None = None
    concurrency: int = Field(2, ge=1, le=64)
    # Runs go to the workers of this Dask scheduler (tcp://HOST:PORT) instead of local
    # processes; the workers must reach the artifacts root and the checkout at the same paths.
    dask_scheduler: str | None = None
    # A run interrupted by a restart is queued again until it has been tried this often.
    max_attempts: int = Field(2, ge=1, le=10)
    github: GitHubSettings = Field(default_factory=GitHubSettings)

    def with_base(self, base: Path) -> TriggerSettings:
        def rebased(path: Path | None) -> Path | None:
            return base / path if path is not None and not path.is_absolute() else path

        github = self.github.model_copy(
            update={
                "secret_file": rebased(self.github.secret_file),
                "token_file": rebased(self.github.token_file),
                "private_key_file": rebased(self.github.private_key_file),
            }
        )
        return self.model_copy(
            update={
                "rules": rebased(self.rules),
                "artifacts_root": rebased(self.artifacts_root),
                "github": github,
            }
        )
