"""MCP prompts for common jobs, and completions for their arguments and the contact resource template.

A prompt is a short, exact plan in terms of this server's tools (workflow tools first), so the model does the
job in a few bounded calls. Completions: enum arguments from their declarations, and tag / course /
community names read from the account.

Bounded: each argument is cut at `ARG_BUDGET` characters and the rendered prompt at `PROMPT_BUDGET`, with
non-printable characters escaped; completion values are names that can be typed (printable, at most
`NAME_BUDGET` characters), so a picker never shows invisible or direction-changing text."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from mcp import MCPError, types

from . import bounds, errors
from .answers import ERROR_BUDGET
from .projection import cut, quoted
from .registry import loaded_toolsets
from .resources import list_items
from .runtime import Runtime


@dataclass(frozen=True)
class Arg:
    name: str
    description: str
    required: bool = False
    choices: tuple[str, ...] = ()  # an enum argument
    names_of: str = ""  # complete with names from this list operation


@dataclass(frozen=True)
class PromptDef:
    name: str
    title: str
    description: str
    args: tuple[Arg, ...]
    template: str  # str.format'ed with the arguments (missing optional ones as "")
    steps: dict[str, str] = field(default_factory=dict)  # optional argument → the step it adds
    needs: str = ""  # an opt-in toolset the plan calls tools of (registry.OPT_IN_TOOLSETS)
    # the plan in tools of the default toolsets, for when `needs` is not loaded: (template, steps); None: the
    # prompt says which toolset to load first
    without: tuple[str, dict[str, str]] | None = None

    def render(self, values: dict[str, str], loaded: Collection[str]) -> str:
        template, steps, lead = self.template, self.steps, ""
        if self.needs and self.needs not in loaded:
            if self.without is None:
                load = f"SYSTEME_TOOLSETS=default,{self.needs}"
                lead = f"(This plan needs the `{self.needs}` toolset, which is not loaded: {load}.)\n"
            else:
                template, steps = self.without
        text = lead + template.format(**values)
        extra = [step.format(**values) for arg, step in steps.items() if values.get(arg)]
        return text + "".join(f"\n- {s}" for s in extra)


ACCESS = ("full_access", "dripping_content")
ARG_BUDGET = 500  # characters per prompt argument
PROMPT_BUDGET = 8_000  # UTF-8 bytes of a rendered prompt
NAME_BUDGET = 255  # characters of a completion value
PROMPTS = {
    p.name: p
    for p in (
        PromptDef(
            "onboard_new_customer",
            "Onboard a new customer",
            "Add or update a customer by email, then tag them and give course/community access.",
            (
                Arg("email", "Customer's email.", required=True),
                Arg("first_name", "First name."),
                Arg("tag", "Tag to add (name).", names_of="list_tags"),
                Arg("course", "Course to enroll in (name).", names_of="list_courses"),
                Arg("access_type", "Course access.", choices=ACCESS),
                Arg("community", "Community to join (name).", names_of="list_communities"),
            ),
            "Onboard the customer {email}{named}. Steps, each reported in one line:\n"
            "- upsert_contact(email={email!r}{first}) — it says whether the contact was created or updated.",
            {
                "tag": "Find the id of tag {tag!r} with list_tags(query={tag!r}) (create_tag if missing), then "
                "bulk_add_tag(contact_ids=[<id>], tag_id=<tag id>).",
                "course": "Find course {course!r} with list_courses(query={course!r}), then "
                "bulk_enroll(contact_ids=[<id>], course_id=<course id>, access_type={access!r}).",
                "community": "Find community {community!r} with list_communities(query={community!r}), then "
                "bulk_add_to_community(contact_ids=[<id>], community_id=<community id>).",
            },
            needs="bulk",
            without=(
                "Onboard the customer {email}{named}. Steps, each reported in one line:\n"
                "- upsert_contact(email={email!r}{first}) — it says whether the contact was created or updated.",
                {
                    "tag": "Find the id of tag {tag!r} with list_tags(query={tag!r}) (create_tag if missing), then "
                    "add_tag_to_contact(contact_id=<id>, tag_id=<tag id>).",
                    "course": "Find course {course!r} with list_courses(query={course!r}); unless "
                    "list_enrollments(course_id=<course id>, contact_id=<id>) shows one already, "
                    "create_enrollment(course_id=<course id>, contact_id=<id>, access_type={access!r}).",
                    "community": "Find community {community!r} with list_communities(query={community!r}), then "
                    "create_membership(community_id=<community id>, contact_id=<id>).",
                },
            ),
        ),
        PromptDef(
            "clean_up_tag",
            "Clean up a tag",
            "Review who has a tag and remove it from the contacts that should not have it.",
            (
                Arg("tag", "Tag name.", required=True, names_of="list_tags"),
                Arg("keep_domain", "Keep it only on emails at this domain, e.g. acme.test."),
            ),
            "Clean up the tag {tag!r}.\n"
            "- find_contacts(tag={tag!r}) shows who has it and how many.\n"
            "- Decide with the user which contacts should lose it; never guess.\n"
            "- bulk_remove_tag(contact_ids=[...], tag_id=<id>) previews; show the preview to the user and apply "
            "only with their agreement (the exact call it gives, with dry_run=false).",
            {"keep_domain": "Contacts whose email is not at {keep_domain} are the candidates to untag."},
            needs="bulk",
            without=(
                "Clean up the tag {tag!r}.\n"
                "- find_contacts(tag={tag!r}) shows who has it and how many.\n"
                "- Decide with the user which contacts should lose it; never guess.\n"
                "- remove_tag_from_contact(contact_id=<id>, tag_id=<id>) for each of them, only with the user's "
                "agreement.",
                {"keep_domain": "Contacts whose email is not at {keep_domain} are the candidates to untag."},
            ),
        ),
        PromptDef(
            "audit_webhooks",
            "Audit webhooks",
            "Check every webhook: active, URL, events; report problems and suggested fixes.",
            (Arg("focus", "What to look at.", choices=("all", "inactive", "events")),),
            "Audit this account's webhooks (focus: {focus}).\n"
            "- list_webhooks, then get_webhook for any that look wrong.\n"
            "- Report per webhook: name, URL (https?), active, events; flag inactive ones, duplicate URLs and "
            "missing CONTACT_CREATED / SALE_NEW where sales or sign-ups matter.\n"
            "- Propose fixes (update_webhook); change nothing without the user's agreement.",
            needs="webhooks",
        ),
    )
}


async def list_prompts(runtime: Runtime, _: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
    listed = [
        types.Prompt(
            name=p.name,
            title=p.title,
            description=p.description,
            arguments=[
                types.PromptArgument(
                    name=a.name,
                    description=a.description + (f" One of: {', '.join(a.choices)}." if a.choices else ""),
                    required=a.required,
                )
                for a in p.args
            ],
        )
        for p in PROMPTS.values()
    ]
    return types.ListPromptsResult(prompts=listed)


def _problem(message: str) -> MCPError:
    return MCPError(code=types.INVALID_PARAMS, message=bounds.safe_text(cut(message, ERROR_BUDGET)))


async def get_prompt(runtime: Runtime, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    name, arguments = params.name, {k: cut(v, ARG_BUDGET) for k, v in (params.arguments or {}).items()}
    prompt = PROMPTS.get(name)
    if prompt is None:
        raise _problem(f"Unknown prompt {quoted(cut(name, 100))}; prompts: {', '.join(PROMPTS)}.")
    known = {a.name: a for a in prompt.args}
    unknown = [quoted(cut(k, 100)) for k in arguments if k not in known]
    if unknown:
        raise _problem(f"{name}: unknown argument(s) {', '.join(unknown)}; it takes: {', '.join(known)}.")
    for a in prompt.args:
        value = arguments.get(a.name, "")
        if a.required and not value:
            raise _problem(f"{name}: `{a.name}` is required ({a.description})")
        if value and a.choices and value not in a.choices:
            raise _problem(f"{name}: `{a.name}` must be one of: {', '.join(a.choices)} (got {quoted(value)}).")
    values = {a.name: arguments.get(a.name, "") for a in prompt.args}
    first = values.get("first_name", "")
    values |= {
        "named": f" ({first})" if first else "",
        "first": f", first_name={first!r}" if first else "",
        "access": values.get("access_type") or "full_access",
        "focus": values.get("focus") or "all",
    }
    loaded = loaded_toolsets(runtime.settings.toolsets, runtime.settings.resolved_backend)
    text = bounds.bound_text(bounds.safe_text(prompt.render(values, loaded)), PROMPT_BUDGET)
    message = types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))
    return types.GetPromptResult(description=prompt.description, messages=[message])


async def _names(runtime: Runtime, tool: str, prefix: str) -> list[str]:
    args_query = prefix.strip()
    try:
        items, _ = await list_items(runtime, tool, max_pages=1 if not args_query else 3)
    except errors.SystemeError:
        return []
    names = [str(i["name"]) for i in items if i.get("name")]
    typed = [n for n in names if len(n) <= NAME_BUDGET and n.isprintable()]  # nothing invisible in a picker
    return [n for n in typed if args_query.casefold() in n.casefold()]


async def _contact_ids(runtime: Runtime, prefix: str) -> list[str]:
    try:
        items, _ = await list_items(runtime, "list_contacts", max_pages=1)
    except errors.SystemeError:
        return []
    return [str(i["id"]) for i in items if str(i["id"]).startswith(prefix)]


def _completion(values: list[str]) -> types.CompleteResult:
    shown = values[:100]
    return types.CompleteResult(
        completion=types.Completion(values=shown, total=len(values), has_more=len(values) > len(shown))
    )


async def complete(runtime: Runtime, params: types.CompleteRequestParams) -> types.CompleteResult:
    ref, arg = params.ref, params.argument
    if isinstance(ref, types.ResourceTemplateReference):
        if ref.uri == "systeme://contacts/{id}" and arg.name == "id":
            return _completion(await _contact_ids(runtime, arg.value))
        return _completion([])
    prompt = PROMPTS.get(ref.name)
    spec: Any = next((a for a in prompt.args if a.name == arg.name), None) if prompt else None
    if spec is None:
        return _completion([])
    if spec.choices:
        return _completion([c for c in spec.choices if c.startswith(arg.value)])
    if spec.names_of:
        return _completion(await _names(runtime, spec.names_of, arg.value))
    return _completion([])
