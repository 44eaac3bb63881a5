"""HTTP routes for both protocols, and the middleware that gives every answer a request id, a trace context,
a metric and, for any failure, a JSON error body that names the field (never an HTML page, never a 500 for a
client error). On the v2 model routes the middleware also checks the API key and the client's rate limit.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable

import orjson
from aiohttp import web

from . import sagemaker, v2
from .config import ServerConfig
from .errors import BatcherFailed, ModelNotFound, NotReady, PayloadTooLarge, ServingError, UnsupportedMediaType
from .guards import ApiKeys, RateLimiter
from .logs import request_id_var
from .metrics import CONTENT_TYPE, Metrics
from .service import InferenceService
from .tracing import TRACEPARENT, request_trace

log = logging.getLogger("workloads.serving.access")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServerState:
    """What the routes read: config, metrics, and the service once the model is loaded and warm."""

    config: ServerConfig
    metrics: Metrics
    service: InferenceService | None = None
    ready: bool = False
    draining: bool = False
    keys: ApiKeys | None = None          # set: the v2 model routes need one of these keys
    limiter: RateLimiter | None = None   # set: each client's v2 model requests are rate limited

    def serving(self) -> InferenceService:
        """The service, or NotReady while loading or draining, or BatcherFailed once its batcher died."""
        if self.draining:
            raise NotReady("server is shutting down", kind="shutting_down")
        if not self.ready or self.service is None:
            raise NotReady("model is still loading")
        if self.service.batcher.failure is not None:
            raise BatcherFailed(f"the batcher failed ({self.service.batcher.failure}); this server is not ready")
        return self.service


STATE = web.AppKey("state", ServerState)


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json",
                        headers=headers)


# Routes a kubelet probe or a metrics scraper calls without a key.
OPEN_PATHS = frozenset({"/ping", "/v2/health/live", "/v2/health/ready", "/v2", "/metrics"})


def _guard(state: ServerState, request: web.Request) -> None:
    """API key, then rate limit, for every model route; health and metrics routes pass. Keys are configured on
    the EKS path only (SageMaker authenticates its callers itself and starts the server without keys), so with
    keys set `/invocations` asks for one too: any pod that may reach the server could call it otherwise."""
    if request.path in OPEN_PATHS:
        return
    client = state.keys.client(request.headers) if state.keys is not None else None
    if state.limiter is not None:
        state.limiter.take(client or f"addr:{request.remote}")


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    supplied = request.headers.get("X-Request-Id", "")
    rid = supplied if _REQUEST_ID_OK.match(supplied) else uuid.uuid4().hex
    token = request_id_var.set(rid)
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    with request_trace(request.headers.get(TRACEPARENT), f"{request.method} {route_name}") as trace:
        try:
            response = await _answer(state, request, handler, rid, route_name)
            response.headers[TRACEPARENT] = trace.header()
            return response
        finally:
            request_id_var.reset(token)


async def _answer(state: ServerState, request: web.Request, handler: Handler, rid: str,
                  route_name: str) -> web.StreamResponse:
    started = time.perf_counter()
    kind = None
    try:
        _guard(state, request)
        response = await handler(request)
    except ServingError as exc:
        kind = exc.kind
        response = _json(exc.body(rid), exc.status, exc.headers)
    except web.HTTPException as exc:  # aiohttp's own: unknown route, wrong method, body over the limit
        err = _from_http_exception(exc)
        kind = err.kind
        response = _json(err.body(rid), err.status, err.headers)
    except Exception:
        log.exception("unhandled error", extra={"event": "internal_error", "path": request.path})
        kind = "internal"
        response = _json(ServingError("internal server error").body(rid), 500)
    response.headers["X-Request-Id"] = rid
    elapsed = time.perf_counter() - started
    state.metrics.request_latency.labels(route_name, str(response.status)).observe(elapsed)
    if kind is not None:
        state.metrics.errors.labels(kind).inc()
    if state.config.access_log:
        fields = {"event": "request", "method": request.method, "path": request.path,
                  "status": response.status, "duration_ms": round(elapsed * 1000, 3)}
        if kind:
            fields["error_kind"] = kind
        attrs = request.headers.get("X-Amzn-SageMaker-Custom-Attributes")
        if attrs:
            fields["custom_attributes"] = attrs[:256]
        log.info("request", extra=fields)
    return response


def _from_http_exception(exc: web.HTTPException) -> ServingError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge(f"request body is larger than the server's limit: {exc.text}", field="body")
    if isinstance(exc, web.HTTPNotFound):
        return ServingError("no such route", field="path", status=404, kind="not_found")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return ServingError(f"method {exc.method} not allowed here; allowed: {', '.join(sorted(exc.allowed_methods))}",
                            field="method", status=405, kind="method_not_allowed")
    return ServingError(exc.reason or "HTTP error", status=exc.status, kind="http_error")


async def _read_body(request: web.Request) -> bytes:
    limit = request.app[STATE].config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is {request.content_length} bytes; the limit is {limit}", field="body")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body is over the {limit} byte limit", field="body") from None


# --- SageMaker -------------------------------------------------------------------------------------------

async def ping(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.serving()
    return _json({"status": "ready"})


async def invocations(request: web.Request) -> web.Response:
    state = request.app[STATE]
    service = state.serving()
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type is {request.headers.get('Content-Type', '(none)')!r}; send application/json",
            field="Content-Type")
    texts = sagemaker.parse_invocation(await _read_body(request), state.config.max_inputs)
    service.check_lengths(texts, lambda i: f"inputs[{i}]")
    rows = await service.infer(texts)
    return web.Response(body=sagemaker.format_outputs(service.info, rows), content_type="application/json")


# --- Open Inference Protocol v2 --------------------------------------------------------------------------

async def v2_server(request: web.Request) -> web.Response:
    return _json(v2.server_metadata())


async def v2_live(request: web.Request) -> web.Response:
    """Live until the batcher dies: then a restart is the only cure, so the liveness probe should fail."""
    service = request.app[STATE].service
    if service is not None and service.batcher.failure is not None:
        return _json({"live": False, "error": service.batcher.failure}, status=503)
    return _json({"live": True})


async def v2_ready(request: web.Request) -> web.Response:
    request.app[STATE].serving()
    return _json({"ready": True})


def _model(request: web.Request) -> ServerState:
    state = request.app[STATE]
    name = request.match_info["name"]
    if name != state.config.model_name:
        raise ModelNotFound(f"unknown model {name!r}; this server serves {state.config.model_name!r}",
                            field="model_name")
    version = request.match_info.get("version")
    if version is not None and version != v2.MODEL_VERSION:
        raise ModelNotFound(f"unknown version {version!r} of model {name!r}; available: {v2.MODEL_VERSION}",
                            field="model_version")
    return state


async def v2_model(request: web.Request) -> web.Response:
    state = _model(request)
    service = state.serving()
    return _json(v2.model_metadata(state.config.model_name, service.info))


async def v2_model_ready(request: web.Request) -> web.Response:
    _model(request).serving()
    return _json({"name": request.match_info["name"], "ready": True})


async def v2_infer(request: web.Request) -> web.Response:
    state = _model(request)
    service = state.serving()
    body = await _read_body(request)
    req = v2.parse_infer(body, request.headers.get(v2.HEADER_LENGTH), service.info, state.config.max_inputs)
    service.check_lengths(req.texts, lambda i: f"inputs[0].data[{i}]")
    rows = await service.infer(req.texts)
    payload, headers = v2.build_response(state.config.model_name, service.info, req, rows)
    return web.Response(body=payload, headers=headers)


# --- Operations ------------------------------------------------------------------------------------------

async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.service is not None:
        state.metrics.queue_depth.set(state.service.batcher.queued_inputs)
    return web.Response(body=state.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def build_app(state: ServerState) -> web.Application:
    """The aiohttp application; the body limit is enforced both from Content-Length and while reading."""
    app = web.Application(middlewares=[_middleware], client_max_size=state.config.max_body_bytes)
    app[STATE] = state
    app.router.add_get("/ping", ping)
    app.router.add_post("/invocations", invocations)
    app.router.add_get("/v2", v2_server)
    app.router.add_get("/v2/health/live", v2_live)
    app.router.add_get("/v2/health/ready", v2_ready)
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.router.add_get(prefix, v2_model)
        app.router.add_get(prefix + "/ready", v2_model_ready)
        app.router.add_post(prefix + "/infer", v2_infer)
    app.router.add_get("/metrics", metrics)
    return app

