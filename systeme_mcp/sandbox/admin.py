"""Admin endpoints under `/__sandbox` for demos and benchmarks (no authentication: serve on loopback only).

- `GET  /__sandbox`                 what is configured (faults, rate limit, switches, counts)
- `POST /__sandbox/reset`           back to the seed state; also clears faults, request log, deliveries
- `GET|POST|DELETE /__sandbox/faults`   read / set (FaultPlan JSON) / clear fault injection
- `GET|DELETE /__sandbox/requests`  the request log (`?limit=N`, newest last) / clear it
- `GET|POST /__sandbox/ratelimit`   read / set `{"capacity": N, "refillPerSecond": R}` or `{"off": true}`
- `POST /__sandbox/settings`        `{"paymentsConfigured", "twilioConnected", "deliverWebhooks",
                                     "membershipDelay"}` (any subset)
- `GET  /__sandbox/deliveries`      webhook deliveries made or prepared (body, signature, status)
- `GET  /__sandbox/connect?session_token=...`  the Maton authorization page: makes the connection ACTIVE
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .faults import FaultPlan
from .gateway import CONNECT_PATH, authorize
from .ratelimit import RateLimit
from .routing import Call, Reply, Router, parse_json

if TYPE_CHECKING:
    from . import Sandbox


def _json_body(call: Call) -> dict[str, Any]:
    data = parse_json(call.raw_body or b"{}")
    if not isinstance(data, dict):
        raise errors.bad_request("The input data is misformatted.")
    return data


def build(sb: Sandbox) -> Router:
    """The admin routes of `sb` (paths relative to `/__sandbox`)."""
    r = Router()

    def status(call: Call) -> Reply:
        return Reply(200, sb.describe())

    def reset(call: Call) -> Reply:
        sb.reset()
        return Reply(200, {"reset": True, "seed": sb.seed})

    def get_faults(call: Call) -> Reply:
        plan = sb.faults.plan
        return Reply(200, {"plan": plan.as_json() if plan else None, "fired": len(sb.faults.fired)})

    def set_faults(call: Call) -> Reply:
        try:
            sb.faults.set(FaultPlan.from_json(_json_body(call)))
        except (TypeError, ValueError) as exc:
            raise errors.bad_request(str(exc)) from None
        return get_faults(call)

    def clear_faults(call: Call) -> Reply:
        sb.faults.clear()
        return Reply(204)

    def get_requests(call: Call) -> Reply:
        limit = call.query.integer("limit") or len(sb.requests)
        return Reply(200, {"count": len(sb.requests), "items": [r.as_json() for r in sb.requests[-limit:]]})

    def clear_requests(call: Call) -> Reply:
        sb.requests.clear()
        return Reply(204)

    def get_ratelimit(call: Call) -> Reply:
        limit = sb.rate_limit
        return Reply(
            200,
            {"off": True}
            if limit is None
            else {"capacity": limit.capacity, "refillPerSecond": limit.refill_per_second},
        )

    def set_ratelimit(call: Call) -> Reply:
        data = _json_body(call)
        try:
            sb.set_rate_limit(
                None if data.get("off") else RateLimit(int(data["capacity"]), float(data["refillPerSecond"]))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.bad_request(f"expected {{capacity, refillPerSecond}} or {{off: true}}: {exc}") from None
        return get_ratelimit(call)

    def settings(call: Call) -> Reply:
        data = _json_body(call)
        opts = sb.env.options
        if "paymentsConfigured" in data:
            opts.payments_configured = bool(data["paymentsConfigured"])
        if "twilioConnected" in data:
            sb.store.twilio["connected"] = bool(data["twilioConnected"])
        if "deliverWebhooks" in data:
            sb.webhooks.enabled = bool(data["deliverWebhooks"])
        if "membershipDelay" in data:
            opts.membership_delay = float(data["membershipDelay"])
        return status(call)

    def deliveries(call: Call) -> Reply:
        rows = [
            {
                "webhookId": d.webhook_id,
                "url": d.url,
                "event": d.event,
                "messageId": d.message_id,
                "body": d.body.decode("ascii"),
                "signature": d.signature,
                "status": d.status,
                "error": d.error,
            }
            for d in sb.webhooks.deliveries
        ]
        return Reply(200, {"items": rows})

    def connect(call: Call) -> Reply:
        conn = authorize(sb.store, call.query.text("session_token"), sb.env.clock())
        if conn is None:
            return Reply(404, "<!doctype html><title>Sandbox</title><p>Unknown or expired authorization link.</p>")
        return Reply(
            200,
            f"<!doctype html><title>Sandbox</title><p>Connection {conn.id} ({conn.app}) is now ACTIVE.</p>",
        )

    for method, path, handler in (
        ("GET", "", status),
        ("POST", "/reset", reset),
        ("GET", "/faults", get_faults),
        ("POST", "/faults", set_faults),
        ("DELETE", "/faults", clear_faults),
        ("GET", "/requests", get_requests),
        ("DELETE", "/requests", clear_requests),
        ("GET", "/ratelimit", get_ratelimit),
        ("POST", "/ratelimit", set_ratelimit),
        ("POST", "/settings", settings),
        ("GET", "/deliveries", deliveries),
        ("GET", CONNECT_PATH.removeprefix("/__sandbox"), connect),
    ):
        r.add(method, path, handler)
    for route in r.routes:
        route.body_type = None  # admin bodies: any content type
    return r
