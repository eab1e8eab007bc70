"""Typed errors of the daemon. Only the CLI turns them into one-line messages and exit codes."""

from __future__ import annotations


class UproarError(Exception):
    """Base of every error Uproar reports to a user; the message says what to do next."""


class ConfigError(UproarError):
    """The configuration is invalid. ``problems`` lists each one with its YAML path and line."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        head = problems[0] if problems else "invalid configuration"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{source}: {head}{more}")


class QueryError(UproarError):
    """A brand query could not be parsed; ``position`` is the 0-based offset of the problem."""

    def __init__(self, query: str, position: int, message: str) -> None:
        self.query = query
        self.position = position
        self.message = message
        pointer = " " * position + "^"
        super().__init__(f"{message} at position {position}\n  {query}\n  {pointer}")


class ArchiveError(UproarError):
    """The archive could not be opened, migrated or written."""


class AlertDeliveryError(UproarError):
    """An alert could not be delivered; ``retryable`` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
