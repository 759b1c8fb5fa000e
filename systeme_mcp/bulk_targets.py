"""What each bulk tool applies: the per-contact write, and how to list who already has it (data, not code)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """What a bulk tool applies: the per-contact write, and how to list who already has it."""

    tool: str
    title: str
    description: str
    write: str  # the declared operation run once per contact
    target_args: tuple[str, ...]  # its arguments taken from the bulk call
    members: str  # a list operation whose items are the contacts already in the target state
    members_query: dict[str, str]  # its argument → the bulk argument giving the value
    member_id: str  # path of the contact id in its items
    state: str  # "already <state>"
    adds: bool = True
    destructive: bool = False


TARGETS = [
    Target(
        "bulk_add_tag",
        "Tag many contacts",
        "Add a tag to many contacts",
        "add_tag_to_contact",
        ("tag_id",),
        "list_contacts",
        {"tag_ids": "tag_id"},
        "id",
        "tagged",
    ),
    Target(
        "bulk_remove_tag",
        "Untag many contacts",
        "Remove a tag from many contacts (may start automations; previews unless dry_run=false)",
        "remove_tag_from_contact",
        ("tag_id",),
        "list_contacts",
        {"tag_ids": "tag_id"},
        "id",
        "without the tag",
        adds=False,
        destructive=True,
    ),
    Target(
        "bulk_enroll",
        "Enroll many contacts",
        "Enroll many contacts in a course",
        "create_enrollment",
        ("course_id", "access_type", "modules"),
        "list_enrollments",
        {"course_id": "course_id"},
        "contact.id",
        "enrolled",
    ),
    Target(
        "bulk_add_to_community",
        "Add many contacts to community",
        "Add many contacts to a community",
        "create_membership",
        ("community_id",),
        "list_memberships",
        {"community_id": "community_id"},
        "contact.id",
        "members",
    ),
]
