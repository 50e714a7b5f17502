"""`{name}` templates: the accepted syntax, the errors users see, literal rendering."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchd.errors import InvalidInput
from batchd.inputs.templates import TemplateError, render, template_fields, validate_template

FIELD_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,15}", fullmatch=True)


def test_fields_in_order_without_repeats():
    assert template_fields("s3://b/{project_name}/{sample_name}/{project_name}.gz") == [
        "project_name", "sample_name"]
    assert template_fields("no fields at all") == []
    assert template_fields("{read-group}_{x_1}") == ["read-group", "x_1"]


def test_escaped_braces_are_literal():
    assert template_fields("{{not_a_field}}") == []
    assert render("{{not_a_field}}", {}) == "{not_a_field}"
    assert render("{{{sample_name}}}", {"sample_name": "s1"}) == "{s1}"


@pytest.mark.parametrize("template, says", [
    ("{}", "empty {}"),
    ("x{0}", "positional field {0}"),
    ("{a.b}", "attribute access"),
    ("{a[0]}", "indexing"),
    ("{a!r}", "conversion"),
    ("{a:>10}", "format spec"),
    ("x/{sample_name", "never closed"),
    ("x/sample_name}", "without a matching '{'"),
    ("{a{b}}", "never closed"),
    ("{ sample_name }", "not a valid field name"),
    ("{1abc}", "not a valid field name"),
])
def test_malformed_templates_are_rejected_with_a_reason(template, says):
    with pytest.raises(InvalidInput) as info:
        template_fields(template)
    assert says in info.value.message
    assert repr(template) in info.value.message  # the user can find the template


def test_unsupported_syntax_suggests_the_plain_field():
    with pytest.raises(TemplateError, match=r"write \{sample_name\} instead"):
        template_fields("{sample_name:>10}")


def test_validate_lists_available_names_sorted_and_where():
    with pytest.raises(InvalidInput) as info:
        validate_template("out/{smaple_name}.txt", ["sample_name", "file_name", "organism"],
                          where="workflow.json: analyses[0].outputs[1]")
    message = info.value.message
    assert message.startswith("workflow.json: analyses[0].outputs[1]: ")
    assert "{smaple_name}" in message
    assert "file_name, organism, sample_name" in message
    assert info.value.details["unknown"] == ["smaple_name"]


def test_validate_syntax_error_carries_where():
    with pytest.raises(InvalidInput, match=r"^wf.json: analyses\[2\].command\[0\]: .*empty"):
        validate_template("{}", ["a"], where="wf.json: analyses[2].command[0]")


def test_validate_accepts_known_fields():
    validate_template("{a}-{b}", ["a", "b", "c"], where="x")


def test_render_missing_value_is_invalid_input_naming_the_field():
    with pytest.raises(InvalidInput, match=r"\{organism\}"):
        render("{sample_name}/{organism}", {"sample_name": "s"})


def test_render_values_are_not_reparsed():
    values = {"a": "{b}", "b": "never"}
    assert render("{a}", values) == "{b}"
    assert render("x {a} $(rm -rf /) `y`", {"a": "; echo '$HOME' }}{{"}) == \
        "x ; echo '$HOME' }}{{ $(rm -rf /) `y`"


def test_parse_is_cached():
    from batchd.inputs.templates import _parse
    template = "cached/{sample_name}/unique-to-this-test"
    first = _parse(template)
    assert _parse(template) is first


@given(names=st.lists(FIELD_NAMES, min_size=1, max_size=5, unique=True),
       values=st.lists(st.text(), min_size=5, max_size=5),
       separators=st.lists(st.text(alphabet=st.characters(blacklist_characters="{}")),
                           min_size=6, max_size=6))
def test_property_values_are_inserted_verbatim(names, values, separators):
    template = separators[0] + "".join(
        "{" + name + "}" + sep for name, sep in zip(names, separators[1:], strict=False))
    mapping = dict(zip(names, values, strict=False))
    expected = separators[0] + "".join(
        mapping[name] + sep for name, sep in zip(names, separators[1:], strict=False))
    assert render(template, mapping) == expected
    assert template_fields(template) == names


@given(st.text(alphabet=st.characters(blacklist_characters="{}")))
def test_property_literal_text_renders_unchanged(text):
    assert render(text, {}) == text
    assert template_fields(text) == []


@given(st.text())
def test_property_escaped_braces_round_trip(text):
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert template_fields(escaped) == []
    assert render(escaped, {}) == text
