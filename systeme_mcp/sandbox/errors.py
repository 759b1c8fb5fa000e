"""Error answers of the fake, shaped like the real services' errors.

Systeme.io (API Platform on Symfony) answers `application/problem+json`:
`{"type": ..., "title": "An error occurred", "status": N, "detail": ...}`; validation failures (422) add
`violations: [{propertyPath, message, code}]` and `detail` joins them as "<propertyPath>: <message>" lines.
The Maton gateway and control API answer with their own small JSON shape, `{"error": {"code", "message"}}`
(a guess: Maton does not publish its error bodies).

Not modelled: the `hydra:`/JSON-LD variants API Platform also serves, trace fields in debug mode, 403 (plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROBLEM_TYPE = "https://tools.ietf.org/html/rfc2616#section-10"
PROBLEM_TITLE = "An error occurred"

# Symfony validator codes (so clients that key on `code` see realistic values).
NOT_BLANK = "c1051bb4-d103-4f74-8988-acbcafc7fdc3"
INVALID_EMAIL = "bd79c0ab-ddba-46cc-a703-a7a4b08de310"
MX_CHECK_FAILED = "bf447c1c-0266-4e10-9c6c-573df282e413"
NOT_UNIQUE = "23bd9dbf-6b9b-41cd-a99e-4844bcf3077f"
TOO_LONG = "d94b19cc-114f-4f44-9cc4-4138e80a87b9"
NO_SUCH_CHOICE = "8e179f1b-97aa-4560-a02f-2a8b42e49df7"
TOO_LOW = "778b7ae0-84d3-481a-9dec-35fdb64b1d78"
REGEX_FAILED = "de1e3db3-5ed4-4941-aae4-59f3667cc3a3"
NOT_VALID = "ba785a8c-82cb-4283-967c-3cf342181b40"

BLANK = "This value should not be blank."
CHOICE = "The value you selected is not a valid choice."
USED = "This value is already used."
BAD_EMAIL = "This value is not a valid email address."


@dataclass
class Violation:
    """One failed constraint: where, what, and the validator's code."""

    property_path: str
    message: str
    code: str = NOT_VALID

    def as_json(self) -> dict[str, str]:
        return {"propertyPath": self.property_path, "message": self.message, "code": self.code}

    def line(self) -> str:
        return f"{self.property_path}: {self.message}" if self.property_path else self.message


@dataclass
class Problem(Exception):
    """An API error answer: raise it anywhere below a route and the app renders it."""

    status: int
    detail: str
    violations: list[Violation] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    bare: bool = False  # only {"detail": ...} (the real 401 bodies carry nothing else)

    def __str__(self) -> str:
        return f"{self.status} {self.detail}"

    def body(self) -> dict[str, object]:
        if self.bare:
            return {"detail": self.detail}
        out: dict[str, object] = {
            "type": PROBLEM_TYPE,
            "title": PROBLEM_TITLE,
            "status": self.status,
            "detail": self.detail,
        }
        if self.violations:
            out["violations"] = [v.as_json() for v in self.violations]
        return out


def not_found() -> Problem:
    return Problem(404, "Not Found")


def bad_request(detail: str) -> Problem:
    return Problem(400, detail)


def invalid(*violations: Violation) -> Problem:
    """422 with the given violations; `detail` joins them one per line."""
    return Problem(422, "\n".join(v.line() for v in violations), list(violations))


def violation(path: str, message: str, code: str = NOT_VALID) -> Problem:
    return invalid(Violation(path, message, code))


def type_error(name: str, expected: str, given: object) -> Problem:
    """400 for a wrongly typed attribute, worded as API Platform words it."""
    return bad_request(f'The type of the "{name}" attribute must be "{expected}", "{json_type(given)}" given.')


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "array"


@dataclass
class GatewayError(Exception):
    """An error produced by the Maton gateway or control API itself (not passed through from Systeme.io)."""

    status: int
    code: str
    message: str

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}
