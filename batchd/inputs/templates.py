"""`{name}` templates: parse, validate, render.

Workflow definitions fill outputs, parameters, commands and environment values from each
sample's metadata with templates like `s3://bucket/{project_name}/{sample_name}.json.gz`.

The syntax is deliberately a tiny subset of `str.format`: only plain `{name}` fields and the
escapes `{{` / `}}`. Attribute access, indexing, conversions and format specs are rejected
rather than half-supported, because a definition that silently means something else on AWS
(hours into a run) is worse than one refused up front.

Rendering substitutes values literally, in one pass: a sample value containing `{`, `}` or
shell metacharacters is inserted as-is and never parsed again. Parsing is the standard library's
`string.Formatter().parse` (the grammar `format_map` itself uses) with the non-plain fields it
accepts refused; it is cached because the same few templates are rendered hundreds of thousands
of times when a workflow is created.
"""

from __future__ import annotations

import difflib
import functools
import re
import string
from collections.abc import Iterable, Mapping

from batchd.errors import InvalidInput
from batchd.text import clip, shorten

# Hyphens are allowed because CSV column names often contain them; dots are not, since
# `{a.b}` reads as attribute access in Python's format syntax and users would expect that.
FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

_LISTED = 40  # field names listed in an unknown-field message

# A parsed template: (literal, field) pairs in order; `field` is None for trailing text.
Parts = tuple[tuple[str, str | None], ...]


class TemplateError(InvalidInput):
    """A template is malformed or names an unknown field."""


def _field_problem(template: str, body: str) -> str:
    """Explain why the text between `{` and `}` is not a plain field name."""
    shown = shorten("{" + body + "}")
    if body == "":
        return (f"template {clip(template)} contains an empty {{}}; put a field name inside, "
                "e.g. {sample_name}, or write {{}} for literal braces")
    if body.isdigit():
        return (f"template {clip(template)} uses the positional field {shown}; "
                "use a field name such as {sample_name} instead")
    for char, what in (("!", "a conversion"), (":", "a format spec"), (".", "attribute access"),
                       ("[", "indexing")):
        if char in body:
            name = body.split(char, 1)[0]
            fix = f"write {shorten('{' + name + '}')} instead" if FIELD_RE.fullmatch(name) else \
                "use a plain field name such as {sample_name}"
            return (f"template {clip(template)} uses {what} in {shown}, which is not supported; "
                    f"only plain {{name}} fields are allowed: {fix}")
    return (f"template {clip(template)}: {shown} is not a valid field name; names start with a "
            "letter or underscore and contain only letters, digits, '_' and '-'")


# The old scanner's tokens, used only to explain a template `Formatter.parse` refused (or
# accepted with more than a plain field): the first lone brace or non-plain field, with its
# position, in the same words as before.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_FORMATTER = string.Formatter()


def _problem(template: str) -> TemplateError:
    for match in _TOKEN.finditer(template):
        token, body = match.group(), match.group(1)
        if token == "}":
            return TemplateError(
                f"template {clip(template)} has a '}}' at position {match.start() + 1} without "
                "a matching '{'; write }} for a literal brace", template=clip(template))
        if token == "{":
            return TemplateError(
                f"template {clip(template)} has a '{{' at position {match.start() + 1} that is "
                "never closed; close the field with '}', or write {{ for a literal brace",
                template=clip(template))
        if body is not None and not FIELD_RE.fullmatch(body):
            return TemplateError(_field_problem(template, body), template=clip(template))
    return TemplateError(f"template {clip(template)} is not a valid template",  # not reached
                         template=clip(template))


@functools.lru_cache(maxsize=4096)
def _parse(template: str) -> Parts:
    parts: list[tuple[str, str | None]] = []
    literal: list[str] = []
    source = 0   # characters of `template` the items stand for
    try:
        # C code, linear in the template (a megabyte of "{{" included); it splits literal text
        # at each escape, so adjacent literals are joined here.
        for text, name, spec, conversion in _FORMATTER.parse(template):
            literal.append(text)
            source += len(text) + text.count("{") + text.count("}")   # "{{" yields one "{"
            if name is None:
                continue
            if spec or conversion is not None or not FIELD_RE.fullmatch(name):
                raise _problem(template)
            parts.append(("".join(literal), name))
            literal = []
            source += len(name) + 2
    except ValueError:   # a lone brace, or a field Formatter cannot even parse ("{a!}")
        raise _problem(template) from None
    if source != len(template):   # "{a:}" parses like "{a}": an empty format spec
        raise _problem(template)
    if literal or not parts:
        parts.append(("".join(literal), None))
    return tuple(parts)


def template_fields(template: str) -> list[str]:
    """The field names a template uses, in order of first use, without repeats."""
    if not isinstance(template, str):
        raise TemplateError(f"a template must be text, got {clip(template)}")
    seen: dict[str, None] = {}
    for _, field in _parse(template):
        if field is not None:
            seen.setdefault(field, None)
    return list(seen)


def validate_template(template: str, available: Iterable[str], *, where: str) -> None:
    """Check syntax and that every field is one of `available`; `where` prefixes the message
    (e.g. "workflow.json: analyses[0].outputs[1]")."""
    try:
        fields = template_fields(template)
    except TemplateError as exc:
        raise TemplateError(f"{where}: {exc.message}", where=where,
                            template=clip(template)) from None
    # a definition checks thousands of templates against the same (frozen) set of columns
    known = available if isinstance(available, (set, frozenset)) else set(available)
    unknown = [f for f in fields if f not in known]
    if unknown:
        names = ", ".join(shorten("{" + f + "}") for f in unknown[:10])
        ordered = sorted(known)
        # A table of a thousand columns must not make a thousand-name message.
        listed = ", ".join(ordered[:_LISTED]) or "(none)"
        if len(ordered) > _LISTED:
            listed += f", ... ({len(ordered) - _LISTED:,} more)"
        near = difflib.get_close_matches(unknown[0], ordered, n=1, cutoff=0.6)
        hint = f"; did you mean {{{near[0]}}}?" if near else ""
        raise TemplateError(
            f"{where}: template {clip(template)} uses {names}, which "
            f"{'is not a field' if len(unknown) == 1 else 'are not fields'}{hint}; available "
            f"fields are: {listed} (the metadata columns plus the built-in names)",
            where=where, template=clip(template), unknown=[shorten(f) for f in unknown[:10]],
            available=ordered[:_LISTED])


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill a template; values are inserted verbatim and never re-parsed."""
    _parse(template)  # validates (cached): only plain {name} fields and {{ }} escapes remain
    try:
        # For that subset str.format_map has exactly our semantics (single pass, a hyphenated
        # name is a mapping key) and runs in C, which matters at 300,000 calls per workflow.
        return template.format_map(values)
    except KeyError as exc:
        raise TemplateError(
            f"template {clip(template)} uses {shorten('{' + exc.args[0] + '}')} but no value was "
            "given for it; "
            f"available values are: {', '.join(sorted(values)) or '(none)'}",
            template=clip(template), field=shorten(exc.args[0])) from None
