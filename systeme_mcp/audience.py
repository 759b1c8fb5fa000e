"""Counting the audience a call reaches by tag (an operation's `audience` key, `declarations.Audience`): contacts
with any of the included tags, less those with any of the excluded ones.

The list operation is paged once per tag (its filter takes one tag at a time, since it matches contacts with all
the tags it is given), at most `PAGES_PER_TAG` pages each; a tag with more contacts than that makes the count
approximate, which the answer says (`exact: false`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .declarations import Audience
from .runtime import CallContext

PAGES_PER_TAG = 50  # 5,000 contacts a tag at the largest page size


@dataclass(frozen=True)
class Count:
    """The audience: how many contacts, whether every tag's list was read in full, and the tags it came from."""

    size: int
    exact: bool
    included: list[int]
    excluded: list[int]

    def words(self) -> str:
        who = f"{self.size} contact{'' if self.size == 1 else 's'}" if self.exact else f"about {self.size} contacts"
        tags = f"with any of tags {self.included}" + (f" and none of {self.excluded}" if self.excluded else "")
        rest = "" if self.exact else "; some tags have too many contacts to count them all"
        return f"{who} ({tags}{rest})"

    def facts(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "exact": self.exact,
            "included_tag_ids": self.included,
            "excluded_tag_ids": self.excluded,
        }


async def _contacts(ctx: CallContext, spec: Audience, tag_ids: list[int]) -> tuple[set[int], bool]:
    """Ids of the contacts with any of `tag_ids`, and whether every tag's list was read to its end."""
    listing = ctx.catalog[spec.tool]
    one_tag_as_list = listing.params[spec.by].type == "integer_list"
    found: set[int] = set()
    complete = True
    for tag in tag_ids:
        query = {spec.by: [tag] if one_tag_as_list else tag}
        capped = False
        async for page in ctx.client.pages(listing, query, PAGES_PER_TAG, shape=ctx.catalog.shape(listing)):
            found |= {i["id"] for i in page.items if isinstance(i, dict) and isinstance(i.get("id"), int)}
            capped = page.has_more  # on the last page yielded: whether the cap stopped the listing
        complete = complete and not capped
    return found, complete


async def count(ctx: CallContext, spec: Audience, args: dict[str, Any]) -> Count:
    """The audience of a call with (validated) `args`; raises a SystemeError if a listing fails."""
    included = list(args.get(spec.include) or [])
    excluded = list(args.get(spec.exclude) or [])
    reached, complete_in = await _contacts(ctx, spec, included)
    kept_out, complete_out = await _contacts(ctx, spec, excluded)
    return Count(len(reached - kept_out), complete_in and complete_out, included, excluded)
