"""Unit tests of pure functions, called directly (no MCP session, no sandbox): the contact matcher behind
find_contacts, the one-line projection of items, the bulk tools' split and id lists, and upsert's diff."""

from __future__ import annotations

from typing import Any

import pytest

from systeme_mcp.bulk import split
from systeme_mcp.bulk_report import ids_text
from systeme_mcp.catalog import Catalog, Operation, ResultShape, load_catalog
from systeme_mcp.finder import matches
from systeme_mcp.projection import VALUE_BUDGET, call_text, cut, line, project
from systeme_mcp.upsert import changed_args


@pytest.fixture(scope="module")
def units_catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def shape(units_catalog: Catalog) -> ResultShape:
    return units_catalog.shapes["contact"]


@pytest.fixture(scope="module")
def update(units_catalog: Catalog) -> Operation:
    return units_catalog["update_contact"]


def contact(**fields: str | None) -> dict[str, Any]:
    """A contact as the API answers it: custom fields (first_name, surname, ...) as a slug/value list."""
    return {
        "id": 7,
        "email": "Ana.Lopez@Acme.Test",
        "locale": "en",
        "fields": [{"slug": slug, "value": value} for slug, value in fields.items()],
    }


ANA = contact(first_name="Ana", surname="López", company="Acme", note="a=b")


# ---------------------------------------------------------------- finder.matches
@pytest.mark.parametrize("domain", ["acme.test", "ACME.TEST", "@acme.test", "@Acme.Test"])
def test_email_domain_matches_case_insensitively_with_or_without_the_at(domain: str) -> None:
    assert matches(ANA, {"email_domain": domain})


@pytest.mark.parametrize("domain", ["other.test", "cme.test", "mail.acme.test", "acme.tes"])
def test_email_domain_is_the_whole_domain(domain: str) -> None:
    assert not matches(ANA, {"email_domain": domain})


def test_email_domain_does_not_match_inside_the_local_part() -> None:
    assert not matches({"email": "acme.test@other.test"}, {"email_domain": "acme.test"})


@pytest.mark.parametrize("name", ["ana", "ANA", "lópez", "LÓPEZ", "Ana López", "lópez ana", "na Ló", "pez"])
def test_name_is_contained_in_first_or_last_name_in_either_order(name: str) -> None:
    assert matches(ANA, {"name": name})


@pytest.mark.parametrize("name", ["Bob", "Ana Smith", "Ana  López", "anaLópez", "Acme"])
def test_name_that_is_in_neither_name_does_not_match(name: str) -> None:
    assert not matches(ANA, {"name": name})


def test_name_comparison_is_casefold_not_lower() -> None:
    # "ß".lower() is "ß" but its casefold is "ss": only casefolding makes these equal
    assert matches(contact(first_name="Jo", surname="Straße"), {"name": "STRASSE"})


@pytest.mark.parametrize("crit", ["company=acme", "company=ACME", "company=  Acme ", "note=a=b", "note=A=B "])
def test_field_value_matches_casefolded_and_stripped(crit: str) -> None:
    assert matches(ANA, {"field": crit})


@pytest.mark.parametrize("crit", ["company=Acm", "company=Acme Inc", "company=López", "city=Acme", "note=a"])
def test_field_value_must_be_the_whole_value_of_that_field(crit: str) -> None:
    assert not matches(ANA, {"field": crit})


def test_criteria_combine_with_and() -> None:
    crit = {"email_domain": "acme.test", "name": "ana", "field": "company=acme"}
    assert matches(ANA, crit)
    for key, wrong in (("email_domain", "other.test"), ("name", "bob"), ("field", "company=other")):
        assert not matches(ANA, {**crit, key: wrong}), key


def test_no_criteria_and_api_side_criteria_match_everything() -> None:
    # email, tags and dates are the API's own filters: the matcher leaves them to it
    assert matches(ANA, {})
    assert matches(ANA, {"email": "someone.else@other.test", "tag_id": 99, "registered_after": "2099-01-01"})


@pytest.mark.parametrize(
    "bare",
    [{"id": 1}, {"id": 1, "email": None, "fields": None}, {"id": 1, "fields": ["junk", {"slug": "first_name"}]}],
)
def test_a_contact_missing_email_or_fields_matches_nothing_and_does_not_fail(bare: dict[str, Any]) -> None:
    assert not matches(bare, {"email_domain": "acme.test"})
    assert not matches(bare, {"name": "ana"})
    assert not matches(bare, {"field": "company=acme"})
    assert matches(bare, {})


# ---------------------------------------------------------------- projection
RAW = {
    "id": 812,
    "email": "ana@acme.test",
    "registeredAt": "2024-01-02T03:04:05+00:00",
    "locale": "fr",
    "sourceURL": "",
    "unsubscribed": True,
    "bounced": False,
    "needsConfirmation": None,
    "fields": [
        {"slug": "first_name", "value": "Ana", "fieldName": "First name"},
        {"slug": "surname", "value": ""},
        {"slug": "city", "value": None},
        {"slug": "company", "value": "Acme"},
    ],
    "tags": [{"id": 3, "name": "vip", "createdAt": "2024-01-01T00:00:00+00:00"}, {"id": 9, "name": "early"}],
    "undeclared": "dropped",
}


def test_project_keeps_declared_fields_under_their_names_and_drops_empty_ones(shape: ResultShape) -> None:
    assert project(shape, RAW) == {
        "id": 812,
        "email": "ana@acme.test",
        "fields": {"first_name": "Ana", "company": "Acme"},  # empty and null values dropped
        "tags": [{"id": 3, "name": "vip"}, {"id": 9, "name": "early"}],  # only id and name of each
        "locale": "fr",
        "registered_at": "2024-01-02T03:04:05Z",  # a datetime in UTC: the same instant, RFC 3339's short form
        "unsubscribed": True,  # a false or null flag is left out, not shown as false
    }


def test_project_drops_fields_that_are_entirely_empty(shape: ResultShape) -> None:
    raw = {"id": 5, "email": "", "fields": [{"slug": "city", "value": ""}], "tags": [], "unsubscribed": False}
    assert project(shape, raw) == {"id": 5}


def test_line_renders_id_first_then_fields_flags_and_refs(shape: ResultShape) -> None:
    assert line(shape, project(shape, RAW)) == (
        "#812 email=ana@acme.test first_name=Ana company=Acme tags=[vip#3, early#9] locale=fr "
        "registered_at=2024-01-02T03:04:05Z unsubscribed"
    )


def test_line_puts_the_id_first_whatever_the_item_order(shape: ResultShape) -> None:
    item = {"unsubscribed": True, "email": "b@acme.test", "id": 4, "bounced": True}
    assert line(shape, item) == "#4 unsubscribed email=b@acme.test bounced"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Ana Maria", '"Ana Maria"'),
        ("Acme, Inc.", '"Acme, Inc."'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("two\nlines", '"two\\nlines"'),
        ("", '""'),
        ("plain-value_1.0", "plain-value_1.0"),
        ("Zoë", "Zoë"),
    ],
)
def test_line_quotes_values_that_are_not_one_plain_word(shape: ResultShape, value: str, shown: str) -> None:
    assert line(shape, {"id": 1, "locale": value}) == f"#1 locale={shown}"
    assert line(shape, {"id": 1, "fields": {"bio": value}}) == f"#1 bio={shown}"


def test_line_cuts_a_long_value_with_a_marker_counting_what_was_left_out(shape: ResultShape) -> None:
    value = "word " * 50  # 250 characters
    shown = line(shape, {"id": 1, "fields": {"bio": value}})
    assert shown == f'#1 bio="{value[:VALUE_BUDGET]}…[+{250 - VALUE_BUDGET} chars]"'


def test_cut_leaves_short_text_alone_and_marks_what_it_leaves_out() -> None:
    assert cut("short text", 10) == "short text"
    assert cut("short text!", 10) == "short text…[+1 chars]"
    assert cut("a b c d e f", 4) == "a b …[+7 chars]"


def test_call_text_is_the_exact_call_with_json_arguments() -> None:
    arguments = {"email_domain": "acme.test", "starting_after": 42, "tag_ids": [1, 2], "dry_run": False}
    assert call_text("find_contacts", arguments) == (
        'find_contacts(email_domain="acme.test", starting_after=42, tag_ids=[1, 2], dry_run=false)'
    )
    assert call_text("list_tags", {}) == "list_tags()"
    nested = {"name": 'Zoë "Z"', "filter": {"name": None}}
    assert call_text("x", nested) == 'x(name="Zoë \\"Z\\"", filter={"name": null})'


# ---------------------------------------------------------------- bulk.split, bulk_report.ids_text
def test_split_when_adding_skips_the_members_and_keeps_the_given_order() -> None:
    assert split([5, 1, 4, 2, 3], {1, 2, 9}, adds=True) == ([5, 4, 3], [1, 2])


def test_split_when_removing_skips_the_non_members() -> None:
    assert split([5, 1, 4, 2, 3], {1, 2, 9}, adds=False) == ([1, 2], [5, 4, 3])


@pytest.mark.parametrize("adds", [True, False])
def test_split_of_nothing_and_of_no_members(adds: bool) -> None:
    assert split([], {1}, adds=adds) == ([], [])
    assert split([1, 2], set(), adds=adds) == (([1, 2], []) if adds else ([], [1, 2]))


def test_ids_text_lists_every_id_within_the_budget() -> None:
    assert ids_text([3, 1, 2]) == "#3, #1, #2"
    assert ids_text([]) == ""
    assert ids_text([100, 200, 300], 16) == "#100, #200, #300"  # exactly the budget: not cut


def test_ids_text_past_the_budget_cuts_between_ids_and_counts_the_rest() -> None:
    assert ids_text([100, 200, 300], 15) == "#100, #200 … (+1 more)"
    assert ids_text([100, 200, 300], 13) == "#100, #200 … (+1 more)"  # never a partial id such as "#3"
    assert ids_text(list(range(1, 101)), 20) == "#1, #2, #3, #4, #5 … (+95 more)"


def test_ids_text_default_budget_keeps_the_text_bounded() -> None:
    ids = list(range(10_000, 12_000))
    text = ids_text(ids)
    listed, _, rest = text.partition(" … ")
    assert len(listed) <= 1500 < len(", ".join(f"#{i}" for i in ids))
    assert rest == f"(+{len(ids) - listed.count('#')} more)"
    assert listed == ", ".join(f"#{i}" for i in ids[: listed.count("#")])


# ---------------------------------------------------------------- upsert.changed_args
def test_changed_args_keeps_only_the_values_that_differ(update: Operation) -> None:
    args = {"first_name": "Ana", "last_name": "Lopez", "locale": "en", "phone_number": "+33 6 00"}
    assert changed_args(update, ANA, args) == {"last_name": "Lopez", "phone_number": "+33 6 00"}


def test_changed_args_compares_last_name_with_the_surname_field(update: Operation) -> None:
    assert changed_args(update, ANA, {"last_name": "López"}) == {}
    assert changed_args(update, ANA, {"first_name": "López"}) == {"first_name": "López"}


def test_changed_args_compares_values_exactly(update: Operation) -> None:
    assert changed_args(update, ANA, {"first_name": "ana"}) == {"first_name": "ana"}
    assert changed_args(update, ANA, {"locale": "fr"}) == {"locale": "fr"}


@pytest.mark.parametrize("given", [None, ""])
@pytest.mark.parametrize("stored", [None, "", "absent"])
def test_changed_args_treats_null_empty_and_absent_as_the_same(
    update: Operation, given: str | None, stored: str | None
) -> None:
    have = contact(first_name="Ana") if stored == "absent" else contact(first_name="Ana", phone_number=stored)
    assert changed_args(update, have, {"phone_number": given}) == {}


def test_changed_args_clearing_a_value_is_a_change(update: Operation) -> None:
    assert changed_args(update, ANA, {"first_name": None}) == {"first_name": None}
    assert changed_args(update, ANA, {"first_name": ""}) == {"first_name": ""}


def test_changed_args_diffs_the_fields_map_slug_by_slug(update: Operation) -> None:
    fields = {"company": "Acme", "note": "new", "city": "Paris", "job": ""}
    assert changed_args(update, ANA, {"fields": fields}) == {"fields": {"note": "new", "city": "Paris"}}
    assert changed_args(update, ANA, {"fields": {"company": None}}) == {"fields": {"company": None}}
    assert changed_args(update, ANA, {"fields": {"company": "Acme", "job": None}}) == {}
    assert changed_args(update, ANA, {"fields": None}) == {}


def test_changed_args_of_nothing_is_nothing(update: Operation) -> None:
    assert changed_args(update, ANA, {}) == {}
    assert changed_args(update, {"id": 1}, {"first_name": "Ana"}) == {"first_name": "Ana"}


def test_a_bulk_tally_says_unknown_when_a_failed_write_may_have_applied() -> None:
    from systeme_mcp.bulk_report import Tally

    assert Tally(changed=[1], failed={2: "x"}, unknown=[2]).outcome() == "applied"
    assert Tally(failed={2: "x"}, unknown=[2]).outcome() == "unknown"
    assert Tally(failed={2: "x"}).outcome() == "not_applied"
    assert Tally(already=[3]).outcome() == "already_applied"
