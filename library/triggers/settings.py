"""The ``service.triggers`` section: rules, the run queue, the results store, GitHub."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from library.triggers.github import DEFAULT_API_URL


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GitHubSettings(_Strict):
    # The webhook's secret (X-Hub-Signature-256); without it the webhook answers 503.
    secret_file: Path | None = None
    # Check runs (rules with `report: github_check`): API base URL and a token file holding
    # an app installation token or a personal token.
    api_url: str = DEFAULT_API_URL
    token_file: Path | None = None
    check_name: str = "bosun notebooks"
    # mobu's refresh app: a push to the branch a notebook-runner flock uses refreshes it.
    refresh: bool = True


class TriggerSettings(_Strict):
    rules: Path | None = None  # no rules: events are recorded, nothing is queued
    # The run queue: a SQLite path or postgresql:// URL; null: STATE_DIR/queue.sqlite.
    queue_store: str | None = None
    # The results store; null: $BOSUN_RESULTS_STORE, else artifacts/results.sqlite.
    results_store: str | None = None
    # Where each run's artifact dir is made; null: STATE_DIR/runs.
    artifacts_root: Path | None = None
    concurrency: int = Field(2, ge=1, le=64)
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
            }
        )
        return self.model_copy(
            update={
                "rules": rebased(self.rules),
                "artifacts_root": rebased(self.artifacts_root),
                "github": github,
            }
        )
