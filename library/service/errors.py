"""The service's refusals, answered in safir's error shape as mobu answers them:
``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    type = "bad_request"

    def __init__(self, message: str, loc: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc

    def detail(self) -> dict[str, Any]:
        item: dict[str, Any] = {"msg": self.message, "type": self.type}
        if self.loc:
            item["loc"] = self.loc
        return {"detail": [item]}


class FlockNotFound(ServiceError):
    status = 404
    type = "flock_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"Flock {name} not found", ["path", "flock"])


class MonkeyNotFound(ServiceError):
    status = 404
    type = "monkey_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"Monkey {name} not found", ["path", "monkey"])


class FlockRefused(ServiceError):
    """A flock that validates but cannot run here (a business this build lacks, a platform
    service or token missing, a user name the platform refuses)."""

    status = 422
    type = "flock_not_runnable"

    def __init__(self, message: str, loc: list[str] | None = None) -> None:
        super().__init__(message, loc or ["body"])


class Conflict(ServiceError):
    status = 409
    type = "conflict"
