"""The seeded demo account: deterministic from the seed, built in a few milliseconds (once per seed and process:
each later account is a copy, unpickled in a third of the time).

Not modelled: realistic time-of-day distributions, lecture content, orders and invoices behind subscriptions.
"""

from __future__ import annotations

import functools
import pickle
import random
import unicodedata
import uuid

from .store import (
    BUILTIN_FIELDS,
    Campaign,
    CampaignStep,
    Community,
    Connection,
    Contact,
    Course,
    Enrollment,
    FieldDef,
    Funnel,
    FunnelStep,
    Membership,
    Module,
    Newsletter,
    Store,
    Subscription,
    Tag,
    Webhook,
)

EPOCH = 1704067200.0  # 2024-01-01T00:00:00+00:00: seed dates are fixed, never the wall clock
DAY = 86400.0
CONTACTS = 300
SEED_CONNECTION_ID = "21fd90f9-5935-43cd-b6c8-bde9d915ca80"

FIRST = (
    "Alice Bruno Chloé David Emma Farid Giulia Hugo Inès Jonas Karin Léa Marco Nadia Olivier Paula Quentin "
    "Rosa Samir Théo Ursula Victor Wen Xavier Yasmin Zoé Amara Björn Carmen Dmitri Elif Fatima Gustavo Hana "
    "Ivan Jade"
).split()
LAST = (
    "Martin Bernard Dubois Moreau Laurent Rossi Müller Schmidt García López Silva Costa Nowak Novak Kowalski "
    "Yilmaz Haddad Nguyen Tanaka Kim Okafor Mensah Andersen Johansson Dupont Lefèvre Marchand Fontaine"
).split()
DOMAINS = ("gmail.test", "outlook.test", "yahoo.test", "proton.test", "orange.test", "web.test")
TAGS = (
    "customer",
    "lead",
    "newsletter",
    "vip",
    "webinar-2024",
    "cold",
    "affiliate",
    "beta-tester",
    "refunded",
    "coaching",
)
CUSTOM_FIELDS = (
    ("company_size", "Company size"),
    ("job_title", "Job title"),
    ("source_campaign", "Source campaign"),
)
COUNTRIES = ("FR", "DE", "IT", "ES", "BE", "CH", "US", "GB", "CA", "NL")
COURSES = (
    (
        "Email Marketing Mastery",
        ("Getting started", "Building your list", "Writing that converts", "Automations"),
    ),
    ("Launch Your Online Course", ("Find your topic", "Record the lessons", "Price and launch")),
    ("Sales Funnel Blueprint", ("Funnel basics", "Opt-in pages", "Upsells", "Analytics", "Scaling")),
)
COMMUNITIES = (("Creators Circle", "creators"), ("Marketing Masterminds", "masterminds"))
PLANS = (
    {"name": "Monthly membership", "amount": 2900, "type": "subscription", "interval": "month"},
    {"name": "Yearly membership", "amount": 29000, "type": "subscription", "interval": "year"},
    {
        "name": "Coaching, 3 payments",
        "amount": 19900,
        "type": "subscription",
        "interval": "month",
        "limit": 3,
    },
)
STATUSES = (
    "active",
    "active",
    "active",
    "cancelled",
    "completed",
    "in_charge",
    "incomplete",
    "incomplete_expired",
)


def _price_plan(index: int) -> dict[str, object]:
    plan = PLANS[index]
    return {
        "id": 100 + index,
        "name": plan["name"],
        "innerName": f"plan-{index + 1}",
        "statementDescriptor": "SANDBOX",
        "amount": plan["amount"],
        "currency": "eur",
        "type": plan["type"],
        "recurringOptions": {
            "id": 200 + index,
            "trialPeriod": 0,
            "trialInterval": "day",
            "interval": plan["interval"],
            "intervalCount": 1,
            "limitOfPayments": plan.get("limit"),
        },
    }


def build(seed: int = 0) -> Store:
    """A fresh demo account for `seed` (same seed, same account): a copy of the one built first, nothing shared.
    (Every sandbox and every `reset` makes one: a test suite makes a thousand.)"""
    store: Store = pickle.loads(_pickled(seed))  # our own bytes, made just below
    return store


@functools.cache
def _pickled(seed: int) -> bytes:
    return pickle.dumps(_build(seed), pickle.HIGHEST_PROTOCOL)


def _build(seed: int) -> Store:
    rng = random.Random(seed)
    s = Store()
    for slug, name in BUILTIN_FIELDS:
        s.fields[slug] = FieldDef(slug, name, builtin=True)
    for slug, name in CUSTOM_FIELDS:
        s.fields[slug] = FieldDef(slug, name)
    for i, name in enumerate(TAGS):
        tag = Tag(s.next_id("tags"), name, EPOCH + i * DAY)
        s.tags[tag.id] = tag
    tag_ids = list(s.tags)
    emails: set[str] = set()
    for i in range(CONTACTS):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        domain = "acme.test" if i % 10 == 0 else rng.choice(DOMAINS)
        local = unicodedata.normalize("NFKD", f"{first}.{last}".lower()).encode("ascii", "ignore").decode()
        email = f"{local}@{domain}"
        n = 2
        while email in emails:
            email, n = f"{local}{n}@{domain}", n + 1
        emails.add(email)
        fields: dict[str, str | None] = {
            "first_name": first,
            "surname": last,
            "country": rng.choice(COUNTRIES),
        }
        if rng.random() < 0.4:
            fields["phone_number"] = "+33 6 " + " ".join(str(rng.randint(10, 99)) for _ in range(4))
        if domain == "acme.test":
            fields["company_name"] = "Acme Corp"
            fields["job_title"] = rng.choice(("CEO", "Marketing lead", "Developer", "Sales"))
        c = Contact(
            id=s.next_id("contacts"),
            email=email,
            registered_at=EPOCH + i * DAY / 3 + rng.randint(0, 3600),
            locale=rng.choice(("en", "en", "fr", "de", "es", "it")),
            source_url=rng.choice(
                (None, "https://sandbox.systeme.local/optin", "https://sandbox.systeme.local/webinar")
            ),
            unsubscribed=rng.random() < 0.08,
            bounced=rng.random() < 0.03,
            needs_confirmation=rng.random() < 0.05,
            fields=fields,
            tag_ids=sorted(rng.sample(tag_ids, rng.choice((0, 1, 1, 2, 3)))),
        )
        s.contacts[c.id] = c
    contact_ids = list(s.contacts)
    for i, (name, modules) in enumerate(COURSES):
        course = Course(s.next_id("courses"), name, active=i != 2 or seed % 2 == 0, path=f"course-{i + 1}")
        s.courses[course.id] = course
        for pos, title in enumerate(modules, 1):
            m = Module(s.next_id("modules"), course.id, title, pos)
            s.modules[m.id] = m
    for cid in rng.sample(contact_ids, 60):
        course_id = rng.choice(list(s.courses))
        e = Enrollment(
            s.next_id("enrollments"),
            cid,
            course_id,
            rng.choice(("full_access", "full_access", "dripping_content")),
            created_at=EPOCH + 30 * DAY,
        )
        s.enrollments[e.id] = e
    for i, (name, path) in enumerate(COMMUNITIES):
        com = Community(s.next_id("communities"), name, "sandbox.systeme.local", path)
        s.communities[com.id] = com
        for cid in rng.sample(contact_ids, 25 + 10 * i):
            m2 = Membership(s.next_id("memberships"), com.id, cid, visible_at=EPOCH)
            s.memberships[m2.id] = m2
    for i, cid in enumerate(rng.sample(contact_ids, 40)):
        status = STATUSES[i % len(STATUSES)]
        created = EPOCH + (60 + i) * DAY
        sub = Subscription(
            s.next_id("subscriptions"),
            cid,
            created,
            status,
            _price_plan(i % len(PLANS)),
            completed_at=created + 90 * DAY if status == "completed" else None,
            cancelled_at=created + 45 * DAY if status == "cancelled" else None,
        )
        s.subscriptions[sub.id] = sub
    hook_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    s.webhooks[hook_id] = Webhook(
        hook_id,
        "CRM sync",
        "https://hooks.acme.test/systeme",
        secret="sandbox-webhook-secret",
        subscriptions=[_subscription(rng, "CONTACT_CREATED", 1), _subscription(rng, "CONTACT_TAG_ADDED", 1)],
    )
    s.connections[SEED_CONNECTION_ID] = Connection(
        SEED_CONNECTION_ID, "systeme", "ACTIVE", EPOCH, EPOCH, session_token=f"seed{seed}"
    )
    _marketing(s)
    s.twilio = {
        "connected": False,
        "account": {
            "accountSid": "AC" + "0" * 31 + "1",
            "deactivated": False,
            "accountName": "Sandbox Twilio",
            "createdAt": "2024-02-01T10:00:00",
        },
        "messageServices": [
            {"sid": "MG" + "0" * 31 + "1", "name": "Default"},
            {"sid": "MG" + "0" * 31 + "2", "name": "Reminders"},
        ],
        "phoneNumbers": ["+15005550006", "+33757000001"],
    }
    return s


def _subscription(rng: random.Random, event: str, version: int) -> dict[str, object]:
    sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return {"id": sid, "event": event, "schemaVersion": version, "disabledAt": None, "disabledReason": None}


def _marketing(s: Store) -> None:
    for name, active, steps in (
        ("Lead magnet", True, ("Opt-in", "Thank you")),
        ("Webinar 2024", False, ("Registration", "Replay")),
    ):
        f = Funnel(s.next_id("funnels"), name, active)
        s.funnels[f.id] = f
        for j, step in enumerate(steps):
            st = FunnelStep(s.next_id("funnel_steps"), f.id, step, "optin" if j == 0 else "thank_you")
            s.funnel_steps[st.id] = st
    for name in ("Welcome sequence", "Webinar follow-up"):
        c = Campaign(s.next_id("campaigns"), name, "hello@acme.test", f"{name} for new leads")
        s.campaigns[c.id] = c
        for day in (0, 2, 5):
            cs = CampaignStep(s.next_id("campaign_steps"), c.id, f"{name} — day {day}", day)
            s.campaign_steps[cs.id] = cs
    for subject, sent in (("November news", True), ("Black Friday preview", False)):
        n = Newsletter(
            s.next_id("newsletters"),
            {
                "subject": subject,
                "previewText": None,
                "editorType": "classic",
                "bodyHtml": f"<p>{subject}</p>",
                "senderEmail": "hello@acme.test",
                "senderName": "Acme",
            },
            is_sent=sent,
        )
        s.newsletters[n.id] = n
