"""The sandbox's state: one Systeme.io account and the Maton connections.

Pure data (dataclasses keyed by id, in creation order) plus id counters and the renderers that turn an
entity into the API's JSON shape. The rules that change state live with their routes (`api_*.py`). Each table
remembers which keys changed since the last save, so `statefile.py` writes only those rows: setting and deleting
keys is noticed on its own; a handler that changes an entity in place gets it with `Store.edit` (or calls
`Table.touch`), not `Store.get`.

Not modelled: several accounts, contact deletion lag (the real API can resurrect old properties when an
email is re-created soon after a delete), automations started by tags, course lectures and drip schedules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from .errors import not_found
from .table import Table

T = TypeVar("T")

BUILTIN_FIELDS: tuple[tuple[str, str], ...] = (
    ("first_name", "First name"),
    ("surname", "Surname"),
    ("phone_number", "Phone number"),
    ("country", "Country"),
    ("city", "City"),
    ("street_address", "Street address"),
    ("postcode", "Postcode"),
    ("company_name", "Company name"),
)
LOCALES = tuple("en fr es it pt de nl ru jp tr ar zh sv ro cs hu sk dk id pl el sr hi no th sq sl ua".split())
ACCESS_TYPES = ("full_access", "partial_access", "dripping_content", "partial_dripping_access")
PARTIAL_ACCESS = ("partial_access", "partial_dripping_access")
EVENTS = (
    "CONTACT_CREATED",
    "CONTACT_TAG_ADDED",
    "CONTACT_TAG_REMOVED",
    "CONTACT_OPT_IN",
    "SALE_NEW",
    "SALE_CANCELED",
)


def iso(ts: float) -> str:
    """A Unix time as the API writes dates: `2024-01-01T00:00:00+00:00`."""
    return datetime.fromtimestamp(int(ts), UTC).isoformat()


@dataclass
class Contact:
    id: int
    email: str
    registered_at: float
    locale: str = "en"
    source_url: str | None = None
    unsubscribed: bool = False
    bounced: bool = False
    needs_confirmation: bool = False
    fields: dict[str, str | None] = field(default_factory=dict)
    tag_ids: list[int] = field(default_factory=list)


@dataclass
class Tag:
    id: int
    name: str
    created_at: float


@dataclass
class FieldDef:
    slug: str
    field_name: str
    builtin: bool = False


@dataclass
class Course:
    id: int
    name: str
    active: bool = True
    locale: str | None = "en"
    path: str | None = None
    domain_name: str | None = "sandbox.systeme.local"


@dataclass
class Module:
    id: int
    course_id: int
    name: str
    position: int


@dataclass
class Enrollment:
    id: int
    contact_id: int
    course_id: int
    access_type: str
    modules: list[int] = field(default_factory=list)
    created_at: float = 0.0


@dataclass
class Community:
    id: int
    name: str
    domain_name: str
    path: str


@dataclass
class Membership:
    id: int
    community_id: int
    contact_id: int
    visible_at: float  # accepted with 202; listed only from this time on


@dataclass
class Subscription:
    id: int
    contact_id: int
    created_at: float
    status: str
    price_plan: dict[str, Any] | None
    completed_at: float | None = None
    cancelled_at: float | None = None


@dataclass
class Webhook:
    id: str
    name: str
    url: str
    secret: str
    active: bool = True
    subscriptions: list[dict[str, Any]] = field(default_factory=list)  # {id, event, schemaVersion, disabled*}


@dataclass
class Connection:
    id: str
    app: str
    status: str
    created_at: float
    updated_at: float
    session_token: str
    metadata: dict[str, Any] = field(default_factory=dict)
    method: str = "OAUTH2"


@dataclass
class Funnel:
    id: int
    name: str
    is_active: bool = True


@dataclass
class FunnelStep:
    id: int
    funnel_id: int
    name: str
    type: str = "optin"


@dataclass
class Campaign:
    id: int
    name: str
    sender_email: str | None = None
    description: str | None = None


@dataclass
class CampaignStep:
    id: int
    campaign_id: int
    name: str
    delay_days: int = 0


@dataclass
class Newsletter:
    id: int
    content: dict[str, Any]
    is_sent: bool = False
    included_tag_ids: list[int] = field(default_factory=list)
    excluded_tag_ids: list[int] = field(default_factory=list)
    scheduled_at: str | None = None
    sent_to: list[int] = field(default_factory=list)  # who a send reached (read by tests: the API cannot)


TABLES: dict[str, type[Any]] = {
    "contacts": Contact,
    "tags": Tag,
    "fields": FieldDef,
    "courses": Course,
    "modules": Module,
    "enrollments": Enrollment,
    "communities": Community,
    "memberships": Membership,
    "subscriptions": Subscription,
    "webhooks": Webhook,
    "connections": Connection,
    "funnels": Funnel,
    "funnel_steps": FunnelStep,
    "campaigns": Campaign,
    "campaign_steps": CampaignStep,
    "newsletters": Newsletter,
}


@dataclass
class Store:
    """Every table of the account, keyed by id (slug for fields) in creation order."""

    contacts: Table[int, Contact] = field(default_factory=Table)
    tags: Table[int, Tag] = field(default_factory=Table)
    fields: Table[str, FieldDef] = field(default_factory=Table)
    courses: Table[int, Course] = field(default_factory=Table)
    modules: Table[int, Module] = field(default_factory=Table)
    enrollments: Table[int, Enrollment] = field(default_factory=Table)
    communities: Table[int, Community] = field(default_factory=Table)
    memberships: Table[int, Membership] = field(default_factory=Table)
    subscriptions: Table[int, Subscription] = field(default_factory=Table)
    webhooks: Table[str, Webhook] = field(default_factory=Table)
    connections: Table[str, Connection] = field(default_factory=Table)
    funnels: Table[int, Funnel] = field(default_factory=Table)
    funnel_steps: Table[int, FunnelStep] = field(default_factory=Table)
    campaigns: Table[int, Campaign] = field(default_factory=Table)
    campaign_steps: Table[int, CampaignStep] = field(default_factory=Table)
    newsletters: Table[int, Newsletter] = field(default_factory=Table)
    twilio: dict[str, Any] = field(default_factory=dict)  # account, message services, phone numbers
    counters: dict[str, int] = field(default_factory=dict)

    def next_id(self, table: str) -> int:
        """The next numeric id of `table` (ids only grow, also across deletes)."""
        value = self.counters.get(table, 0) + 1
        self.counters[table] = value
        return value

    def get(self, table: dict[Any, T], key: Any) -> T:
        """The entity or a 404 problem."""
        entity = table.get(key)
        if entity is None:
            raise not_found()
        return entity

    def edit(self, table: Table[Any, T], key: Any) -> T:
        """The entity or a 404 problem, noted as changed: what a handler uses before changing an entity in place."""
        entity = self.get(table, key)
        table.touch(key)
        return entity

    def tables(self) -> Iterator[tuple[str, Table[Any, Any]]]:
        """(name, table) for every entity table, in `TABLES` order."""
        for name in TABLES:
            yield name, getattr(self, name)

    def saved(self) -> None:
        """Forget every table's changes (they are written, or there is nowhere to write them)."""
        for _, table in self.tables():
            if table.changed or table.added:
                table.saved()

    def email_taken(self, email: str) -> bool:
        wanted = email.casefold()
        return any(c.email.casefold() == wanted for c in self.contacts.values())

    # ------------------------------------------------------------------ renderers
    def contact_json(self, c: Contact) -> dict[str, Any]:
        return {
            **self.contact_ref(c),
            "fields": [
                {"fieldName": f.field_name, "slug": f.slug, "value": c.fields.get(f.slug)} for f in self.fields.values()
            ],
            "tags": [{"id": t, "name": self.tags[t].name} for t in c.tag_ids if t in self.tags],
        }

    def contact_ref(self, c: Contact) -> dict[str, Any]:
        """The scalar part of a contact (as nested in enrollments)."""
        return {
            "id": c.id,
            "email": c.email,
            "registeredAt": iso(c.registered_at),
            "locale": c.locale,
            "sourceURL": c.source_url,
            "unsubscribed": c.unsubscribed,
            "bounced": c.bounced,
            "needsConfirmation": c.needs_confirmation,
        }

    # ------------------------------------------------------------------ snapshot
    def to_json(self) -> dict[str, Any]:
        """Every table as lists of rows (creation order), plus `twilio` and `counters`: the old state-file format."""
        out: dict[str, Any] = {name: [dataclasses.asdict(e) for e in table.values()] for name, table in self.tables()}
        out["twilio"] = self.twilio
        out["counters"] = self.counters
        return out
