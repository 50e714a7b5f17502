"""Templates parsed by `string.Formatter().parse`: the spellings it accepts that batchd must
still refuse (it reads `{a:}` like `{a}`, and `{a[}]}`, `{:}`, `{!r}` as fields), the ones it
refuses in its own words, and positions in the messages, all as the hand scanner said them."""

import pytest

from batchd.inputs.templates import TemplateError, render, template_fields


@pytest.mark.parametrize("template, says", [
    ("{a:}", "uses a format spec in {a:}"),
    ("x{a!r:}", "uses a conversion in {a!r:}"),
    ("{:}", "format spec in {:}"),
    ("{!r}", "conversion in {!r}"),
    ("{a!}", "uses a conversion in {a!}"),
    ("{a!rr}", "uses a conversion in {a!rr}"),
    ("{a[0}", "uses indexing in {a[0}"),
    ("{a[}]}", "uses indexing in {a[}"),
    ("{a:{b}}", "at position 1 that is never closed"),
    ("ok/{a}/x}", "'}' at position 9 without a matching '{'"),
    ("{{ok}}/{a", "'{' at position 8 that is never closed"),
])
def test_refused_as_the_hand_scanner_refused_it(template, says):
    with pytest.raises(TemplateError) as info:
        template_fields(template)
    assert says in info.value.message


def test_the_first_problem_from_the_left_is_reported():
    # Formatter yields "{a.b}" before it reaches the lone brace: the field is named first.
    with pytest.raises(TemplateError, match="attribute access"):
        template_fields("{a.b} }")


def test_literals_split_at_escapes_are_joined():
    from batchd.inputs.templates import _parse
    assert _parse("a{{b}}c{x}d{{") == (("a{b}c", "x"), ("d{", None))
    assert render("a{{b}}c{x}d{{", {"x": "1"}) == "a{b}c1d{"
