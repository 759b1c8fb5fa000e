"""Account webhooks managed through the API: list, get, create, merge-patch update, delete.

Not modelled: automatic disabling of failing subscriptions (`BAD_SUCCESS_RATE`), the HTTPS-only rule of the
dashboard (any http(s) URL is accepted so loopback receivers work), the dashboard's legacy webhooks.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from . import errors
from .routing import Call, Reply, Router, created, envelope
from .store import EVENTS, Webhook
from .validation import Body

router = Router()
DEFAULT_VERSION = {e: (2 if e.startswith("SALE_") else 1) for e in EVENTS}


def webhook_json(w: Webhook) -> dict[str, Any]:
    """A webhook as the API shows it: the secret is never returned."""
    return {
        "id": w.id,
        "name": w.name,
        "url": w.url,
        "active": w.active,
        "subscriptions": [dict(s) for s in w.subscriptions],
    }


def _subscriptions(body: Body, previous: list[dict[str, Any]], *, required: bool) -> list[dict[str, Any]] | None:
    """Parse `subscriptions` (bare event strings or {event, schemaVersion}); keep ids of unchanged events."""
    items = body.array("subscriptions", required=required)
    if items is None:
        return None
    if not items and required:
        body.add("subscriptions", errors.BLANK, errors.NOT_BLANK)
    old = {s["event"]: s for s in previous}
    out: list[dict[str, Any]] = []
    for item in items:
        event: Any = None
        version: Any = None
        if isinstance(item, str):
            event, version = item, DEFAULT_VERSION.get(item, 1)
        elif isinstance(item, dict):
            event, version = item.get("event"), item.get("schemaVersion")
        valid_version = isinstance(version, int) and not isinstance(version, bool) and version >= 1
        if event not in EVENTS or not valid_version or any(s["event"] == event for s in out):
            body.add("subscriptions", "This value is not valid.")
            continue
        keep = old.get(str(event))
        sid = keep["id"] if keep and keep["schemaVersion"] == version else str(uuid.uuid4())
        out.append({"id": sid, "event": event, "schemaVersion": version, "disabledAt": None, "disabledReason": None})
    return out


def _unique(call: Call, body: Body, attr: str, value: str | None, current: str | None) -> None:
    if value and any(getattr(w, attr) == value and w.id != current for w in call.store.webhooks.values()):
        body.add(attr, errors.USED, errors.NOT_UNIQUE)


@router.route("GET", "/webhooks")
def list_webhooks(call: Call) -> Reply:
    return envelope(webhook_json(w) for w in call.store.webhooks.values())


@router.route("GET", "/webhooks/{id:str}")
def get_webhook(call: Call) -> Reply:
    return Reply(200, webhook_json(call.store.get(call.store.webhooks, call.params["id"])))


@router.route("POST", "/webhooks")
def create_webhook(call: Call) -> Reply:
    body = call.body()
    name = body.text("name", required=True, max_len=255)
    url = body.text("url", required=True, max_len=2048)
    secret = body.text("secret", required=True, max_len=255)
    active = body.boolean("active")  # `boolean|null` in the spec; absent or null: active
    subscriptions = _subscriptions(body, [], required=True)
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
        body.add("url", "This value is not a valid URL.")
    _unique(call, body, "name", name, None)
    _unique(call, body, "url", url, None)
    body.done()
    assert name and url and secret and subscriptions is not None
    hook = Webhook(str(uuid.uuid4()), name, url, secret, active is not False, subscriptions)
    return created(call.store.webhooks, hook, webhook_json)


@router.route("PATCH", "/webhooks/{id:str}")
def update_webhook(call: Call) -> Reply:
    hook = call.store.edit(call.store.webhooks, call.params["id"])
    body = call.body()
    name = body.text("name", max_len=255)
    secret = body.text("secret", max_len=255)
    active = body.boolean("active")
    subscriptions = _subscriptions(body, hook.subscriptions, required=False)
    if subscriptions is not None and not subscriptions:
        body.add("subscriptions", errors.BLANK, errors.NOT_BLANK)
    _unique(call, body, "name", name, hook.id)
    body.done()
    hook.name = name if name else hook.name
    hook.secret = secret if secret else hook.secret
    hook.active = hook.active if active is None else active
    hook.subscriptions = hook.subscriptions if subscriptions is None else subscriptions
    return Reply(200, webhook_json(hook))


@router.route("DELETE", "/webhooks/{id:str}")
def delete_webhook(call: Call) -> Reply:
    hook = call.store.get(call.store.webhooks, call.params["id"])
    del call.store.webhooks[hook.id]
    return Reply(204)
