"""Contacts, tags, contact tags and contact-field definitions.

Not modelled: automations that tagging starts, the double opt-in flow (`needsConfirmation` never changes),
contact deletion lag, per-field value formats (e.g. country codes are stored as given).
"""

from __future__ import annotations

from typing import Any

from . import errors
from .routing import Call, Reply, Router, created, envelope, fetched, named_page, page_reply
from .store import LOCALES, Contact, FieldDef, Tag, iso
from .validation import Body, domain_listed, valid_email

router = Router()
TAG_NAME_MAX = 64
SLUG_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


# ---------------------------------------------------------------------------- contacts
@router.route("GET", "/contacts")
def list_contacts(call: Call) -> Reply:
    q, store = call.query, call.store
    page = call.page()
    email = q.text("email")
    if email is not None and not valid_email(email):
        raise errors.violation("email", errors.BAD_EMAIL, errors.INVALID_EMAIL)
    tags_text = q.text("tags")
    wanted_tags: set[int] = set()
    if tags_text is not None:
        parts = [p.strip() for p in tags_text.split(",") if p.strip()]
        if not all(p.isdigit() and len(p) < 19 for p in parts):
            raise errors.violation("tags", "This value is not valid.")
        wanted_tags = {int(p) for p in parts}
    flags = {name: q.boolean(name) for name in ("unsubscribed", "bounced", "needsConfirmation")}
    after, before = q.datetime("registeredAfter"), q.datetime("registeredBefore")

    def keep(c: Contact) -> bool:
        if email is not None and c.email.casefold() != email.casefold():
            return False
        if wanted_tags and not wanted_tags.issubset(c.tag_ids):
            return False
        values = {
            "unsubscribed": c.unsubscribed,
            "bounced": c.bounced,
            "needsConfirmation": c.needs_confirmation,
        }
        if any(v is not None and values[k] != v for k, v in flags.items()):
            return False
        if after is not None and c.registered_at <= after.timestamp():
            return False
        return before is None or c.registered_at < before.timestamp()

    return page_reply(filter(keep, store.contacts.values()), page, lambda c: c.id, store.contact_json)


def _field_values(call: Call, body: Body, *, allow_null: bool) -> dict[str, str | None]:
    """The `fields: [{slug, value}]` attribute as {slug: value}; unknown slugs are violations."""
    items = body.array("fields")
    values: dict[str, str | None] = {}
    for i, item in enumerate(items or []):
        where = f"fields[{i}]"
        if not isinstance(item, dict):
            raise errors.type_error(where, "array", item)
        slug, value = item.get("slug"), item.get("value")
        if not isinstance(slug, str):
            raise errors.type_error(f"{where}.slug", "string", slug)
        if value is not None and not isinstance(value, str):
            raise errors.type_error(f"{where}.value", "string", value)
        if slug not in call.store.fields:
            body.add(f"{where}.slug", f'Contact field with slug "{slug}" not found.')
        elif value is None and not allow_null:
            continue
        else:
            values[slug] = value
    return values


@router.route("POST", "/contacts")
def create_contact(call: Call) -> Reply:
    body, store = call.body(), call.store
    email = body.text("email", required=True)
    locale = body.choice("locale", LOCALES)
    values = _field_values(call, body, allow_null=False)
    if email and email.strip():
        if not valid_email(email):
            body.add("email", errors.BAD_EMAIL, errors.INVALID_EMAIL)
        elif domain_listed(email, call.env.options.no_mx_domains):
            body.add("email", errors.BAD_EMAIL, errors.MX_CHECK_FAILED)
        elif store.email_taken(email):
            body.add("email", errors.USED, errors.NOT_UNIQUE)
    body.done()
    assert email is not None
    contact = Contact(store.next_id("contacts"), email, call.env.clock(), locale or "en", fields=values)
    store.contacts[contact.id] = contact
    shown = store.contact_json(contact)
    call.env.emit("CONTACT_CREATED", {"contact": shown})
    return Reply(201, shown)


@router.route("GET", "/contacts/{id:int}")
def get_contact(call: Call) -> Reply:
    return Reply(200, call.store.contact_json(call.store.get(call.store.contacts, call.int_param("id"))))


@router.route("PATCH", "/contacts/{id:int}")
def update_contact(call: Call) -> Reply:
    store = call.store
    contact = store.edit(store.contacts, call.int_param("id"))
    body = call.body()
    locale = body.choice("locale", LOCALES)
    values = _field_values(call, body, allow_null=True)
    body.done()
    if locale is not None:
        contact.locale = locale
    for slug, value in values.items():
        if value is None:
            contact.fields.pop(slug, None)
        else:
            contact.fields[slug] = value
    return Reply(200, store.contact_json(contact))


@router.route("DELETE", "/contacts/{id:int}")
def delete_contact(call: Call) -> Reply:
    store = call.store
    contact = store.get(store.contacts, call.int_param("id"))
    del store.contacts[contact.id]
    for table in (store.enrollments, store.memberships):
        for key in [k for k, v in table.items() if v.contact_id == contact.id]:
            del table[key]
    return Reply(204)


@router.route("POST", "/contacts/{id:int}/tags")
def add_tag(call: Call) -> Reply:
    store = call.store
    contact = store.edit(store.contacts, call.int_param("id"))
    body = call.body()
    tag_id = body.integer("tagId", required=True)
    if tag_id is not None and tag_id not in store.tags:
        body.add("tagId", f"Tag with ID {tag_id} not found.")
    body.done()
    assert tag_id is not None
    if tag_id not in contact.tag_ids:  # a repeat is a quiet success (204), as observed by clients
        contact.tag_ids.append(tag_id)
        tag = store.tags[tag_id]
        call.env.emit("CONTACT_TAG_ADDED", {"contact": store.contact_json(contact), "tag": _tag_ref(tag)})
    return Reply(204)


@router.route("DELETE", "/contacts/{id:int}/tags/{tagId:int}")
def remove_tag(call: Call) -> Reply:
    store = call.store
    contact = store.edit(store.contacts, call.int_param("id"))
    tag_id = call.int_param("tagId")
    if tag_id not in contact.tag_ids:
        raise errors.not_found()
    contact.tag_ids.remove(tag_id)
    tag = store.tags[tag_id]
    call.env.emit("CONTACT_TAG_REMOVED", {"contact": store.contact_json(contact), "tag": _tag_ref(tag)})
    return Reply(204)


# ---------------------------------------------------------------------------- tags
def _tag_ref(tag: Tag) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name}


def tag_json(tag: Tag) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name, "createdAt": iso(tag.created_at)}


@router.route("GET", "/tags")
def list_tags(call: Call) -> Reply:
    return named_page(call, call.store.tags.values(), tag_json)


def _tag_name(call: Call, body: Body, current: int | None) -> str:
    name = body.text("name", required=True, max_len=TAG_NAME_MAX)
    if name and any(t.name.casefold() == name.strip().casefold() and t.id != current for t in call.store.tags.values()):
        body.add("name", errors.USED, errors.NOT_UNIQUE)
    body.done()
    assert name is not None
    return name.strip()


@router.route("POST", "/tags")
def create_tag(call: Call) -> Reply:
    name = _tag_name(call, call.body(), None)
    tag = Tag(call.store.next_id("tags"), name, call.env.clock())
    return created(call.store.tags, tag, tag_json)


@router.route("GET", "/tags/{id:int}")
def get_tag(call: Call) -> Reply:
    return fetched(call, call.store.tags, tag_json)


@router.route("PUT", "/tags/{id:int}")
def update_tag(call: Call) -> Reply:
    tag = call.store.edit(call.store.tags, call.int_param("id"))
    tag.name = _tag_name(call, call.body(), tag.id)
    return Reply(200, tag_json(tag))


@router.route("DELETE", "/tags/{id:int}")
def delete_tag(call: Call) -> Reply:
    store = call.store
    tag = store.get(store.tags, call.int_param("id"))
    del store.tags[tag.id]
    for contact in store.contacts.values():
        if tag.id in contact.tag_ids:
            contact.tag_ids.remove(tag.id)
            store.contacts.touch(contact.id)
    for newsletter in store.newsletters.values():
        for ids in (newsletter.included_tag_ids, newsletter.excluded_tag_ids):
            if tag.id in ids:
                ids.remove(tag.id)
                store.newsletters.touch(newsletter.id)
    return Reply(204)


# ---------------------------------------------------------------------------- contact fields
def field_json(f: FieldDef) -> dict[str, Any]:
    return {"slug": f.slug, "fieldName": f.field_name}


@router.route("GET", "/contact_fields")
def list_fields(call: Call) -> Reply:
    return envelope(field_json(f) for f in call.store.fields.values())


@router.route("POST", "/contact_fields")
def create_field(call: Call) -> Reply:
    body, store = call.body(), call.store
    name = body.text("fieldName", required=True, max_len=255)
    slug = body.text("slug", required=True, max_len=255)
    if slug and not set(slug) <= SLUG_CHARS:
        body.add("slug", "This value is not valid.", errors.REGEX_FAILED)
    elif slug and slug in store.fields:
        body.add("slug", errors.USED, errors.NOT_UNIQUE)
    body.done()
    assert name is not None and slug is not None
    store.fields[slug] = FieldDef(slug, name)
    return Reply(201, field_json(store.fields[slug]))


def _custom_field(call: Call) -> FieldDef:
    f = call.store.edit(call.store.fields, call.params["slug"])
    if f.builtin:
        raise errors.violation("slug", "A built-in contact field cannot be changed or deleted.")
    return f


@router.route("PATCH", "/contact_fields/{slug:slug}")
def update_field(call: Call) -> Reply:
    f = _custom_field(call)
    body = call.body()
    name = body.text("fieldName", required=True, max_len=255)
    body.done()
    assert name is not None
    f.field_name = name
    return Reply(200, field_json(f))


@router.route("DELETE", "/contact_fields/{slug:slug}")
def delete_field(call: Call) -> Reply:
    f = _custom_field(call)
    del call.store.fields[f.slug]
    for contact in call.store.contacts.values():
        if f.slug in contact.fields:
            del contact.fields[f.slug]
            call.store.contacts.touch(contact.id)
    return Reply(204)
