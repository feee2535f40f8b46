"""The exceptions usage-core raises: one base class, one subclass per Rust ``Error`` variant.

Every exception keeps the Rust message (``str(err)``), its stable ``code`` (the same string the
Node binding puts in ``err.code``), and the variant's fields as attributes.
"""

from __future__ import annotations

from decimal import Decimal

__all__ = [
    "UsageError",
    "UnknownModelError",
    "InvalidUsageError",
    "InvalidCatalogError",
    "InvalidResponseError",
    "InvalidArgumentError",
    "QuotaExceededError",
    "NotFoundError",
    "OperationCancelledError",
    "StoreError",
]


class UsageError(Exception):
    """Base class of every usage-core error."""

    code: str = "USAGE_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class UnknownModelError(UsageError, LookupError):
    """The model is not in the pricing catalog under any alias (``UNKNOWN_MODEL``)."""

    code = "UNKNOWN_MODEL"

    def __init__(self, message: str, *, model: str) -> None:
        super().__init__(message)
        self.model = model


class InvalidUsageError(UsageError, ValueError):
    """Token counts that cannot be right (``INVALID_USAGE``)."""

    code = "INVALID_USAGE"

    def __init__(self, message: str, *, field: str, reason: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


class InvalidCatalogError(UsageError, ValueError):
    """Catalog data that cannot be used for pricing (``INVALID_CATALOG``)."""

    code = "INVALID_CATALOG"

    def __init__(self, message: str, *, model: str, field: str, reason: str) -> None:
        super().__init__(message)
        self.model = model
        self.field = field
        self.reason = reason


class InvalidResponseError(UsageError, ValueError):
    """A provider payload without the shape its provider documents (``INVALID_RESPONSE``)."""

    code = "INVALID_RESPONSE"

    def __init__(self, message: str, *, provider: str, field: str, reason: str) -> None:
        super().__init__(message)
        self.provider = provider
        self.field = field
        self.reason = reason


class InvalidArgumentError(UsageError, ValueError):
    """An argument that cannot be used: a naive datetime, a bad time zone… (``INVALID_ARGUMENT``)."""

    code = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, field: str, reason: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


class QuotaExceededError(UsageError):
    """A hard quota would be exceeded (``QUOTA_EXCEEDED``). Amounts are in the quota's metric."""

    code = "QUOTA_EXCEEDED"

    def __init__(
        self, message: str, *, quota: str, limit: Decimal, used: Decimal, requested: Decimal
    ) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit
        self.used = used
        self.requested = requested


class NotFoundError(UsageError, LookupError):
    """A quota, reservation or run that does not exist (``NOT_FOUND``)."""

    code = "NOT_FOUND"

    def __init__(self, message: str, *, kind: str, id: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.id = id


class OperationCancelledError(UsageError):
    """A long operation was cancelled; nothing it did was kept (``CANCELLED``)."""

    code = "CANCELLED"

    def __init__(self, message: str, *, operation: str) -> None:
        super().__init__(message)
        self.operation = operation


class StoreError(UsageError):
    """The storage backend failed (``STORE_ERROR``); the message carries the backend's error."""

    code = "STORE_ERROR"

    def __init__(self, message: str, *, backend: str, operation: str) -> None:
        super().__init__(message)
        self.backend = backend
        self.operation = operation
