"""Cheaper response parsing for the AWS clients batchd makes hundreds of calls a second with.

Profiling the daemon at a 400 TPS budget showed botocore spending more CPU *parsing* answers
than sending requests: a DescribeJobs answer of 100 jobs is walked value by value against the
service model (~1.5 million shape visits per 10,000 jobs), and every S3 ListObjectsV2 key has
its LastModified run through dateutil. Both walks are pure overhead for batchd:

- In a JSON protocol, a shape made only of strings, numbers, booleans, lists, maps and
  structures parses to exactly what `json.loads` already returned (AWS Batch's whole model is
  such shapes: its times are epoch-millisecond longs). `FastRestJSONParser` returns those
  subtrees as they are; any shape holding a timestamp, blob, document or union still goes
  through botocore. The only difference: keys the model does not know are kept, not dropped.
- In rest-xml (S3), `FastRestXMLParser` reads each structure in one pass over its element
  with a precomputed plan (same values as botocore's, see tests/unit/test_fastparse.py).
- batchd never reads S3's or CloudWatch Logs' timestamps as datetimes (outputs are checked
  for presence; log events keep their epoch-ms `timestamp`), so the session's timestamp parser
  is the identity (`ResponseParserFactory.set_parser_defaults` is botocore's public hook).

Errors are parsed by botocore's own code paths either way (`_do_error_parse`).
"""

from __future__ import annotations

import weakref
from typing import Any

from aiobotocore.parsers import AioResponseParserFactory, AioRestJSONParser, AioRestXMLParser
from aiobotocore.session import AioSession

__all__ = ["FastRestJSONParser", "FastRestXMLParser", "install", "json_native"]

JSON_NATIVE = frozenset({"string", "long", "integer", "boolean", "float", "double",
                         "structure", "list", "map"})


def json_native(shape: Any, _seen: dict[str, bool] | None = None) -> bool:
    """True when parsing `shape` is the identity on its decoded JSON."""
    seen = {} if _seen is None else _seen
    name = shape.name
    if name in seen:
        return seen[name]          # recursive shapes: assume yes while the walk is open
    seen[name] = True
    ok = (shape.type_name in JSON_NATIVE
          and not getattr(shape, "is_document_type", False)
          and not getattr(shape, "is_tagged_union", False)
          and not shape.serialization.get("eventstream")
          and not shape.serialization.get("jsonvalue"))
    if ok and shape.type_name == "structure":
        ok = all(json_native(member, seen) for member in shape.members.values())
    elif ok and shape.type_name == "list":
        ok = json_native(shape.member, seen)
    elif ok and shape.type_name == "map":
        ok = json_native(shape.key, seen) and json_native(shape.value, seen)
    seen[name] = ok
    return ok


class FastRestJSONParser(AioRestJSONParser):
    """rest-json parsing that skips the model walk where it cannot change anything."""

    # Keyed by the shape object (botocore caches them per model); weak, so a closed client's
    # model is not kept alive and a recycled id() can never be mistaken for another shape.
    _native: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()

    def _parse_shape(self, shape: Any, node: Any) -> Any:
        if node is not None and shape.type_name in ("structure", "list", "map"):
            native = self._native.get(shape)
            if native is None:
                native = self._native[shape] = json_native(shape)
            if native:
                return node
        return super()._parse_shape(shape, node)


# XML member types read straight from an element's text, as botocore's handlers do.
_TEXT, _INT, _BOOL, _TIME = range(4)
_SCALAR_KINDS = {"string": _TEXT, "character": _TEXT, "integer": _INT, "long": _INT,
                 "boolean": _BOOL, "timestamp": _TIME}


class FastRestXMLParser(AioRestXMLParser):
    """rest-xml parsing with a precomputed plan per structure shape: one pass over the
    element's children and scalar members read from their text, instead of botocore's
    per-member lookups, regex tag cleaning and handler dispatch. ~10x less CPU on an S3
    listing of 1,000 keys. Shapes with headers, attributes, unions or errors keep botocore's
    own path; so do lists and nested structures (each nested structure gets its own plan)."""

    _plans: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()

    def _plan(self, shape: Any) -> list[tuple[str, str, Any, int | None]] | None:
        try:
            return self._plans[shape]
        except KeyError:
            pass
        plan: list[tuple[str, str, Any, int | None]] | None = []
        if shape.metadata.get("exception") or getattr(shape, "is_tagged_union", False):
            plan = None
        else:
            for name, member in shape.members.items():
                ser = member.serialization
                if ser.get("location") or ser.get("eventheader") or ser.get("xmlAttribute") \
                        or ser.get("xmlNamespace"):
                    plan = None
                    break
                plan.append((name, self._member_key_name(member, name), member,
                             _SCALAR_KINDS.get(member.type_name)))
        self._plans[shape] = plan
        return plan

    def _handle_structure(self, shape: Any, node: Any) -> Any:
        plan = self._plan(shape)
        if plan is None or isinstance(node, list):
            return super()._handle_structure(shape, node)
        children: dict[str, Any] = {}
        for item in node:
            tag = item.tag.rpartition("}")[2]
            seen = children.get(tag)
            if seen is None:
                children[tag] = item
            elif isinstance(seen, list):
                seen.append(item)
            else:
                children[tag] = [seen, item]
        parsed: dict[str, Any] = {}
        for name, xml_name, member, kind in plan:
            value = children.get(xml_name)
            if value is None:
                continue
            if kind is None or isinstance(value, list):
                parsed[name] = self._parse_shape(member, value)
                continue
            text = value.text or ""
            if kind == _TEXT:
                parsed[name] = text
            elif kind == _INT:
                parsed[name] = int(text)
            elif kind == _BOOL:
                parsed[name] = text == "true"
            else:
                parsed[name] = self._timestamp_parser(text)
        return parsed


def _raw_timestamp(value: Any) -> Any:
    return value


class FastParserFactory(AioResponseParserFactory):
    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "rest-json":
            return FastRestJSONParser(**self._defaults)
        if protocol_name == "rest-xml":
            return FastRestXMLParser(**self._defaults)
        return super().create_parser(protocol_name)


def install(session: AioSession) -> None:
    """Make every client created from `session` afterwards use the cheaper parsing."""
    factory = FastParserFactory()
    factory.set_parser_defaults(timestamp_parser=_raw_timestamp)
    session.register_component("response_parser_factory", factory)
