"""School (courses, modules, enrollments), community (communities, memberships) and payment (subscriptions).

Not modelled: lectures and drip schedules, course creation, community posts, orders, refunds, price-plan
and coupon catalogues, SALE_* webhook events, the end of a billing period (a `WhenBillingPeriodEnds`
cancellation stays `active` with `cancelledAt` set forever).
"""

from __future__ import annotations

from typing import Any

from . import errors
from .routing import Call, Reply, Router, named_page, page_reply
from .store import ACCESS_TYPES, PARTIAL_ACCESS, Community, Course, Enrollment, Membership, Subscription, iso
from .validation import Body

router = Router()
CANCEL_MODES = ("Now", "WhenBillingPeriodEnds")
CANCELLABLE = ("active", "in_charge", "incomplete")


def course_json(c: Course) -> dict[str, Any]:
    """A course as nested in an enrollment ([SPEC] Course: id, locale, path, active, name)."""
    return {"id": c.id, "name": c.name, "active": c.active, "locale": c.locale, "path": c.path}


def course_item(call: Call, c: Course) -> dict[str, Any]:
    """A course as the list shows it: live items also carry `domainName` and `modules [{id, name}]` (Airbyte's
    schema, auto-imported from live answers)."""
    modules = sorted((m for m in call.store.modules.values() if m.course_id == c.id), key=lambda m: m.position)
    return {**course_json(c), "domainName": c.domain_name, "modules": [{"id": m.id, "name": m.name} for m in modules]}


def community_json(c: Community) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "domainName": c.domain_name, "path": c.path}


def _contact_id(call: Call, body: Body) -> int | None:
    contact_id = body.integer("contactId", required=True)
    if contact_id is not None and contact_id not in call.store.contacts:
        body.add("contactId", f"Contact with ID {contact_id} not found.")
    return contact_id


def _joining(call: Call, parents: dict[int, Any], param: str) -> tuple[Any, Body, int | None]:
    """The parent the path names (404 if none), the body, and the contact joining it (checked to exist)."""
    parent = call.store.get(parents, call.int_param(param))
    body = call.body()
    return parent, body, _contact_id(call, body)


def _filter_id(call: Call, name: str) -> int | None:
    return call.query.integer(name, message="This value is not valid.")


# ---------------------------------------------------------------------------- school
@router.route("GET", "/school/courses")
def list_courses(call: Call) -> Reply:
    store, page = call.store, call.page()
    active = call.query.boolean("active")
    query = (call.query.text("query") or "").casefold()

    def keep(c: Course) -> bool:
        names = [c.name] + [m.name for m in store.modules.values() if m.course_id == c.id]
        return (active is None or c.active == active) and any(query in n.casefold() for n in names)

    return page_reply(filter(keep, store.courses.values()), page, lambda c: c.id, lambda c: course_item(call, c))


@router.route("GET", "/school/course-modules")
def list_modules(call: Call) -> Reply:
    page = call.page()
    course_id = _filter_id(call, "courseId")
    if course_id is None:
        raise errors.violation("courseId", errors.BLANK, errors.NOT_BLANK)
    modules = (m for m in call.store.modules.values() if m.course_id == course_id)
    return page_reply(modules, page, lambda m: m.id, lambda m: {"id": m.id, "name": m.name, "position": m.position})


def enrollment_json(call: Call, e: Enrollment) -> dict[str, Any]:
    store = call.store
    return {
        "id": e.id,
        "contact": store.contact_ref(store.contacts[e.contact_id]),
        "course": {k: v for k, v in course_json(store.courses[e.course_id]).items()},
        "accessType": e.access_type,
        "active": True,
    }


@router.route("POST", "/school/courses/{courseId:int}/enrollments")
def create_enrollment(call: Call) -> Reply:
    store = call.store
    course, body, contact_id = _joining(call, store.courses, "courseId")
    access = body.choice("accessType", ACCESS_TYPES, required=True)
    modules = body.array("modules")
    module_ids: list[int] = []
    if access in PARTIAL_ACCESS:
        if not modules:
            body.add("modules", errors.BLANK, errors.NOT_BLANK)
        for i, mid in enumerate(modules or []):
            if not isinstance(mid, int) or isinstance(mid, bool):
                raise errors.type_error(f"modules[{i}]", "int", mid)
            module = store.modules.get(mid)
            if module is None or module.course_id != course.id:
                body.add(f"modules[{i}]", f"Module with ID {mid} not found in this course.")
            module_ids.append(mid)
    body.done()
    assert contact_id is not None and access is not None
    existing = next(
        (e for e in store.enrollments.values() if (e.contact_id, e.course_id) == (contact_id, course.id)),
        None,
    )
    if existing is not None:  # re-enrolling updates the access of the existing enrollment (guess)
        existing.access_type, existing.modules = access, module_ids
        store.enrollments.touch(existing.id)
        return Reply(201, enrollment_json(call, existing))
    enrollment = Enrollment(store.next_id("enrollments"), contact_id, course.id, access, module_ids, call.env.clock())
    store.enrollments[enrollment.id] = enrollment
    return Reply(201, enrollment_json(call, enrollment))


@router.route("GET", "/school/enrollments")
def list_enrollments(call: Call) -> Reply:
    page = call.page()
    course, contact = _filter_id(call, "course"), _filter_id(call, "contact")
    rows = (
        e
        for e in call.store.enrollments.values()
        if (course is None or e.course_id == course) and (contact is None or e.contact_id == contact)
    )
    return page_reply(rows, page, lambda e: e.id, lambda e: enrollment_json(call, e))


@router.route("DELETE", "/school/enrollments/{id:int}")
def delete_enrollment(call: Call) -> Reply:
    enrollment = call.store.get(call.store.enrollments, call.int_param("id"))
    del call.store.enrollments[enrollment.id]
    return Reply(204)


# ---------------------------------------------------------------------------- community
@router.route("GET", "/community/communities")
def list_communities(call: Call) -> Reply:
    return named_page(call, call.store.communities.values(), community_json)


@router.route("POST", "/community/communities/{communityId:int}/memberships")
def create_membership(call: Call) -> Reply:
    store = call.store
    community, body, contact_id = _joining(call, store.communities, "communityId")
    body.done()
    assert contact_id is not None
    known = any((m.community_id, m.contact_id) == (community.id, contact_id) for m in store.memberships.values())
    if not known:  # joining twice is accepted again (202) without a second membership (guess)
        visible = call.env.clock() + call.env.options.membership_delay
        membership = Membership(store.next_id("memberships"), community.id, contact_id, visible)
        store.memberships[membership.id] = membership
    return Reply(202, {})


def _visible(call: Call) -> list[Membership]:
    now = call.env.clock()
    return [m for m in call.store.memberships.values() if m.visible_at <= now]


@router.route("GET", "/community/memberships")
def list_memberships(call: Call) -> Reply:
    page = call.page()
    community, contact = _filter_id(call, "community"), _filter_id(call, "contact")
    rows = (
        m
        for m in _visible(call)
        if (community is None or m.community_id == community) and (contact is None or m.contact_id == contact)
    )

    def render(m: Membership) -> dict[str, Any]:
        return {
            "id": m.id,
            "community": community_json(call.store.communities[m.community_id]),
            "contact": {"id": m.contact_id},
        }

    return page_reply(rows, page, lambda m: m.id, render)


@router.route("DELETE", "/community/memberships/{id:int}")
def delete_membership(call: Call) -> Reply:
    wanted = call.int_param("id")
    if not any(m.id == wanted for m in _visible(call)):
        raise errors.not_found()
    del call.store.memberships[wanted]
    return Reply(204)


# ---------------------------------------------------------------------------- payment
def subscription_json(s: Subscription) -> dict[str, Any]:
    return {
        "id": s.id,
        "createdAt": iso(s.created_at),
        "status": s.status,
        "completedAt": iso(s.completed_at) if s.completed_at is not None else None,
        "cancelledAt": iso(s.cancelled_at) if s.cancelled_at is not None else None,
        "pricePlan": s.price_plan,
    }


def _payments(call: Call) -> None:
    if not call.env.options.payments_configured:
        raise errors.not_found()


@router.route("GET", "/payment/subscriptions")
def list_subscriptions(call: Call) -> Reply:
    _payments(call)
    page = call.page()
    text = call.query.text("contact")
    if text is None or not text.isdigit() or int(text) < 1 or len(text) > 18:
        raise errors.violation("contact", "This value should be positive.", errors.TOO_LOW)
    contact = int(text)
    rows = (s for s in call.store.subscriptions.values() if s.contact_id == contact)
    return page_reply(rows, page, lambda s: s.id, subscription_json)


@router.route("POST", "/payment/subscriptions/{id:int}/cancel")
def cancel_subscription(call: Call) -> Reply:
    _payments(call)
    sub = call.store.edit(call.store.subscriptions, call.int_param("id"))
    body = call.body()
    mode = body.choice("cancel", CANCEL_MODES, required=True)
    body.done()
    if sub.status == "cancelled" or sub.cancelled_at is not None:
        raise errors.violation("", "Subscription is already cancelled")
    if sub.status not in CANCELLABLE:
        raise errors.violation("", f"Subscription with status {sub.status} cannot be cancelled")
    sub.cancelled_at = call.env.clock()
    if mode == "Now":
        sub.status = "cancelled"
    return Reply(204)
