"""The operation catalog: `tool_specs/*.toml` loaded into typed, checked declarations.

Each Systeme.io operation is declared once, as data. Everything else — the tool's JSON Schema, the pydantic
model that validates arguments, the output schema, annotations, the HTTP request, the summary, the README
table and the parametrized tests — is derived from these objects.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache, cached_property
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .declarations import Audience, Step

ParamType = Literal[
    "string",
    "integer",
    "boolean",
    "email",
    "url",
    "uuid",
    "datetime",
    "future_datetime",
    "newsletter_html",
    "enum",
    "integer_list",
    "enum_list",
    "string_map",
]
Location = Literal["path", "query", "body", "field", "fields", "local"]  # local: read by the server, never sent
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
FieldType = Literal["string", "datetime", "integer", "boolean", "flag", "slug_map", "refs", "events"]

# The order tools are listed in: by toolset, then as declared.
TOOLSET_ORDER = (
    "contacts",
    "tags",
    "fields",
    "school",
    "community",
    "payment",
    "webhooks",
    "connections",
    "funnels",
    "mailing",
    "sms",
    "workflows",
    "jobs",
    "bulk",
)

TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{2,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AsObjects(_Strict):
    """Send each list item as an object: {key: item, version_key: versions[item]}."""

    key: str
    version_key: str
    versions: dict[str, int]


class Param(_Strict):
    """One tool argument: its type and constraints, and where it goes on the wire."""

    name: str = ""
    type: ParamType
    description: str
    location: Location = Field("body", alias="in")
    api: str | None = None
    required: bool = False
    nullable: bool = False
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    pattern: str | None = None
    values: list[str] | dict[str, str] | None = None
    as_objects: AsObjects | None = None
    secret: bool = False
    default: str | int | bool | list[int] | None = None  # taken when the argument is left out

    @model_validator(mode="after")
    def _enum_has_values(self) -> Param:
        if self.type in ("enum", "enum_list") and not self.values:
            raise ValueError(f"{self.type} parameter needs `values`")
        return self

    @property
    def wire_name(self) -> str:
        """The API's name for this argument (default: camelCase of the argument name)."""
        if self.api:
            return self.api
        head, *rest = self.name.split("_")
        return head + "".join(part.title() for part in rest)

    @property
    def choices(self) -> list[str]:
        """Allowed values of an enum argument, as the model writes them."""
        return list(self.values) if self.values else []

    def wire_value(self, choice: str) -> str:
        """The API's spelling of an enum choice."""
        return self.values[choice] if isinstance(self.values, dict) else choice


class ResultField(_Strict):
    path: str
    type: FieldType = "string"


class ResultShape(_Strict):
    """How one API object is projected into the compact item the model reads."""

    noun: str
    key: str = "id"
    fields: dict[str, ResultField]
    list_fields: tuple[str, ...] | None = None  # what a list page's line shows besides the key; None: every field

    @model_validator(mode="before")
    @classmethod
    def _expand_short_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            data = dict(data)
            data["fields"] = {k: {"path": v} if isinstance(v, str) else v for k, v in data["fields"].items()}
        return data

    @model_validator(mode="after")
    def _check_list_fields(self) -> ResultShape:
        for entry in self.list_fields or ():  # a field, or `slug_map_field.key` (e.g. `fields.first_name`)
            name, dot, _ = entry.partition(".")
            if name not in self.fields or (dot and self.fields[name].type != "slug_map"):
                raise ValueError(f"list_fields: {entry!r} is neither a field nor `slug_map_field.key` of the shape")
        return self


class Reference(_Strict):
    """A call to another tool, used to check a write (`verify`) or describe a target (`target`)."""

    tool: str
    match: dict[str, str] = {}  # argument of `tool` → argument of this operation
    find: dict[str, str] = {}  # field of a result item → argument of this operation that it must equal
    noun: str = ""
    on: str = ""  # the record read names what the target sits on ("tag 3 on contact #812 ...")


class NotConfiguredWhen(_Strict):
    """Error statuses that mean the account has not set up a feature this operation needs."""

    statuses: list[int]
    feature: str
    where: str


class Rule(_Strict):
    """`param` is required when `when` matches, and (if `only`) not allowed otherwise."""

    param: str
    when: dict[str, list[str]]
    only: bool = True


Api = Literal["systeme", "maton"]


class Operation(_Strict):
    """One declared operation = one MCP tool."""

    name: str
    title: str
    description: str
    toolset: str
    method: Method
    path: str
    api: Api = "systeme"
    result: str
    result_path: str | None = None
    items_path: str = "items"
    params: dict[str, Param] = {}
    at_least_one: bool = False
    rules: list[Rule] = []
    verify: Reference | None = None
    target: Reference | None = None
    idempotent: bool | None = None
    destructive: bool | None = None
    success: str = ""
    not_found: str = ""
    already: str = ""  # an API error text meaning "this already happened" (after an ambiguous attempt)
    not_configured: NotConfiguredWhen | None = None
    unknown_hint: str = ""  # how to check a write whose outcome is unknown, where no `verify` read exists
    audience: Audience | None = None  # who the call reaches, named in its confirmation and dry run
    before: list[Step] = []  # declared writes run first (declarations.py)
    changes: list[str] = []  # resource URIs a write may change ({argument} placeholders): see subscriptions.py

    @property
    def is_list(self) -> bool:
        return self.result.endswith("[]")

    @property
    def shape_name(self) -> str | None:
        return None if (name := self.result.removesuffix("[]")) == "none" else name

    @property
    def read_only(self) -> bool:
        return self.method == "GET"

    @property
    def is_idempotent(self) -> bool:
        """Whether repeating the request cannot change the outcome (safe to retry blindly)."""
        return self.idempotent if self.idempotent is not None else self.method in ("GET", "PUT", "DELETE", "PATCH")

    @property
    def is_destructive(self) -> bool:
        return self.destructive if self.destructive is not None else self.method == "DELETE"

    @property
    def paginated(self) -> bool:
        return "starting_after" in self.params

    @cached_property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


class Catalog:
    """All declared operations and result shapes, checked for consistency at load time."""

    def __init__(self, operations: dict[str, Operation], shapes: dict[str, ResultShape]) -> None:
        self.operations = operations
        self.shapes = shapes
        self._check()

    def __iter__(self) -> Any:
        return iter(self.operations.values())

    def __len__(self) -> int:
        return len(self.operations)

    def __getitem__(self, name: str) -> Operation:
        return self.operations[name]

    def shape(self, op: Operation) -> ResultShape | None:
        return self.shapes[op.shape_name] if op.shape_name else None

    def _check(self) -> None:
        for op in self:
            where = f"tool_specs: {op.name}"
            if not TOOL_NAME.match(op.name):
                raise ValueError(f"{where}: bad tool name")
            if op.shape_name and op.shape_name not in self.shapes:
                raise ValueError(f"{where}: unknown result shape {op.shape_name!r}")
            missing = [p for p in op.path_params if p not in op.params or op.params[p].location != "path"]
            if missing:
                raise ValueError(f"{where}: path placeholders without path params: {missing}")
            for ref in (op.verify, op.target, op.audience, *op.before):
                if ref and ref.tool not in self.operations:
                    raise ValueError(f"{where}: references unknown tool {ref.tool!r}")
            if op.verify and not self.operations[op.verify.tool].is_list:
                raise ValueError(f"{where}: `verify` must name a list operation (it is read back page by page)")
            for rule in op.rules:
                if rule.param not in op.params or any(k not in op.params for k in rule.when):
                    raise ValueError(f"{where}: rule names an unknown parameter")
            used = [*(op.audience.arguments() if op.audience else ()), *(a for s in op.before for a in s.args.values())]
            if any(name not in op.params for name in used):
                raise ValueError(f"{where}: `audience` or `before` names an unknown parameter")


CONFIRM = {"name": "confirm", "type": "boolean", "in": "local", "description": "true only after the user agreed."}


def confirmable(op: Operation) -> Operation:
    """`op` with the `confirm` argument if it is destructive (the one rule, for declared and workflow tools)."""
    if not op.is_destructive or "confirm" in op.params:
        return op
    return op.model_copy(update={"params": {**op.params, "confirm": Param.model_validate(CONFIRM)}})


FLAG_LISTS = ("nullable", "required")  # operation keys naming params to mark so


def _resolve_params(raw: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in raw.pop("use", []):
        if name not in shared:
            raise ValueError(f"tool_specs: {raw.get('name')}: `use` names unknown shared param {name!r}")
        params[name] = dict(shared[name])
    params.update(raw.get("params", {}))
    flags = {flag: set(raw.pop(flag, [])) for flag in FLAG_LISTS}  # e.g. `required = ["events"]` on a `use`d one
    for name, spec in params.items():
        spec["name"] = name
        spec.update({flag: True for flag, names in flags.items() if name in names})
    return params


def _declarations_folder() -> Traversable:
    """Where the `*.toml` declarations are: inside the installed package, else at the top of the source checkout.

    The wheel ships them as `systeme_mcp/tool_specs/`; an editable install reads the checkout's `tool_specs/`.
    """
    installed = resources.files("systeme_mcp") / "tool_specs"
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parent.parent / "tool_specs"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"tool declarations not found: looked in the installed package ({installed}) "
        f"and in the source checkout ({checkout})"
    )


@cache
def load_catalog() -> Catalog:
    """Read every declaration file: `systeme_mcp/tool_specs/` in the wheel, `tool_specs/` in a source checkout."""
    folder = _declarations_folder()
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    documents = {f.name: tomllib.loads(f.read_text(encoding="utf-8")) for f in files}
    shapes_doc = documents.pop("shapes.toml")
    shared = shapes_doc.get("params", {})
    features = shapes_doc.get("features", {})
    shapes = {name: ResultShape.model_validate(s) for name, s in shapes_doc.get("results", {}).items()}
    operations: dict[str, Operation] = {}
    for filename, doc in documents.items():
        for name, raw in doc.items():
            if name in operations:
                raise ValueError(f"tool_specs/{filename}: {name} is declared twice")
            raw = dict(raw, name=name)
            raw["params"] = _resolve_params(raw, shared)
            feature = raw.get("not_configured")
            if isinstance(feature, str):
                if feature not in features:
                    raise ValueError(f"tool_specs/{filename}: {name}: unknown feature {feature!r} (see shapes.toml)")
                raw["not_configured"] = features[feature]
            op = Operation.model_validate(raw)
            operations[name] = confirmable(op)
    rank = {name: i for i, name in enumerate(TOOLSET_ORDER)}
    ordered = sorted(operations.values(), key=lambda op: rank.get(op.toolset, len(rank)))
    return Catalog({op.name: op for op in ordered}, shapes)
