"""Errors that map to an HTTP answer: one place decides status, kind and the field to blame."""

from __future__ import annotations


class ServingError(Exception):
    """An error with an HTTP status, a machine-readable kind and, for client mistakes, the offending field."""

    status = 500
    kind = "internal"

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None,
                 kind: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        if kind is not None:
            self.kind = kind
        self.headers = headers or {}

    def body(self, request_id: str | None) -> dict[str, object]:
        """The JSON error body: `error` (what Triton/KServe clients read), plus kind, field and request id."""
        out: dict[str, object] = {"error": self.message, "kind": self.kind}
        if self.field is not None:
            out["field"] = self.field
        if request_id:
            out["request_id"] = request_id
        return out


class BadRequest(ServingError):
    """The client sent something we cannot serve (bad JSON, wrong type, empty or too many inputs)."""

    status = 400
    kind = "bad_request"


class UnsupportedMediaType(ServingError):
    """The body is not JSON (SageMaker sends the caller's Content-Type through)."""

    status = 415
    kind = "unsupported_media_type"


class PayloadTooLarge(ServingError):
    """The body, or the number of inputs, is larger than the configured limit."""

    status = 413
    kind = "payload_too_large"


class ModelNotFound(ServingError):
    """The v2 path names a model (or version) this server does not serve."""

    status = 404
    kind = "model_not_found"


class Overloaded(ServingError):
    """The batch queue is full: answer at once so the caller (or the load balancer) retries elsewhere."""

    status = 503
    kind = "queue_full"


class NotReady(ServingError):
    """The model is still loading or the server is draining for shutdown."""

    status = 503
    kind = "not_ready"


class DeadlineExceeded(ServingError):
    """The request waited longer than its deadline; its slot in a batch was given up."""

    status = 504
    kind = "deadline_exceeded"


class BatcherFailed(ServingError):
    """The batcher's own loop failed: queued requests cannot be answered and the server turns not-ready."""

    status = 503
    kind = "batcher_failed"


class Unauthorized(ServingError):
    """No API key, or not one of the configured keys (the SageMaker routes never ask: SageMaker authenticates)."""

    status = 401
    kind = "unauthorized"


class RateLimited(ServingError):
    """This client sent more than its share; `Retry-After` says when its bucket has a token again."""

    status = 429
    kind = "rate_limited"


class InputTooLong(ServingError):
    """An input has more tokens than the configured limit (refused rather than silently truncated)."""

    status = 422
    kind = "input_too_long"
