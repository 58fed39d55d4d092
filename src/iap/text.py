"""Text that may be stored: no NUL or other control characters (PostgreSQL refuses NUL in
text, and control characters in names and tags only ever mean trouble). Tabs and newlines are
allowed where prose is expected."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# For query parameters (FastAPI applies it as a regex over the whole value).
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]*$"


def has_control(value: str, *, allow_whitespace: bool = False) -> bool:
    pattern = _CONTROL_EXCEPT_WHITESPACE if allow_whitespace else _CONTROL
    return pattern.search(value) is not None


def _line(value: str) -> str:
    if has_control(value):
        raise ValueError("must not contain control characters")
    return value


def _prose(value: str) -> str:
    if has_control(value, allow_whitespace=True):
        raise ValueError("must not contain control characters other than tabs and newlines")
    return value


PROSE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


@dataclass(frozen=True)
class _Refused:
    """A validator that also puts its rule in the JSON schema, so the document says what is
    refused."""

    check: Callable[[str], str]
    pattern: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        documented = handler(schema)
        documented["pattern"] = self.pattern
        return documented


# Validators to place after any length or strip constraints, so those apply first:
#   Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), NoControl]
NoControl = _Refused(_line, NO_CONTROL_PATTERN)
ProseOnly = _Refused(_prose, PROSE_PATTERN)

SingleLine = Annotated[str, NoControl]
Prose = Annotated[str, ProseOnly]
