"""The strict JSON loader every user document and request body goes through, the API body
field check, and the job definition references a workflow makes (validation.py, jobdefs.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from batchd.errors import InvalidInput
from batchd.inputs.jobdefs import check_references
from batchd.inputs.validation import BODY_FIELDS, MAX_JSON_DEPTH, check_fields, load_json


def test_plain_documents_load_as_json_does():
    assert load_json('{"a": [1, 2.5, "x", true, null]}', where="f") == {
        "a": [1, 2.5, "x", True, None]}
    assert load_json("\ufeff[1]", where="f") == [1]
    assert load_json(b'{"a": "\xc3\xa9"}', where="f") == {"a": "é"}
    assert load_json(str(2 ** 63 - 1), where="f") == 2 ** 63 - 1


@pytest.mark.parametrize("text, words", [
    (b'{\n"a": "caf\xe9"}', ["f line 2", "byte 0xe9", "offset 11", "UTF-8"]),
    ("[" * 10_000 + "]" * 10_000, ["f:", f"more than {MAX_JSON_DEPTH} levels"]),
    ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), ["levels"]),
    ("1" + "0" * 5000, ["too large", "write the value you mean"]),
    (str(2 ** 63), ["too large"]),
    ("-" + str(2 ** 63 + 1), ["too large"]),
    ("1e400", ["1e400", "too large"]),
    ('{"a": NaN}', ["NaN is not allowed"]),
    ('{"a": -Infinity}', ["-Infinity is not allowed"]),
    ('{"a": 1, "b": {"c": 1, "c": 2}}', ["'c' appears more than once"]),
    ('{"a": 1} {"b": 2}', ["f line 1 column 10", "Extra data", "nothing after it"]),
])
def test_refusals_name_the_place_and_the_fix(text, words):
    with pytest.raises(InvalidInput) as info:
        load_json(text, where="f")
    for word in words:
        assert word in info.value.message


def test_depth_at_the_limit_is_fine():
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert load_json(deep, where="f") is not None


def test_body_fields_unknown_and_wrongly_typed():
    fields = BODY_FIELDS["resubmit_jobs"]
    check_fields({"status": "FAILED", "memory": 4000, "vcpus": 1.5, "force": True,
                  "sample": None}, fields)
    with pytest.raises(InvalidInput, match="unknown request field \"memroy\"; did you mean "
                                           "'memory'"):
        check_fields({"memroy": 1}, fields)
    with pytest.raises(InvalidInput, match="'force' must be true or false"):
        check_fields({"force": 1}, fields)
    with pytest.raises(InvalidInput, match="'memory' must be a whole number"):
        check_fields({"memory": True}, fields)
    with pytest.raises(InvalidInput, match="'step' must be a whole number"):
        check_fields({"step": "1"}, BODY_FIELDS["cancel_jobs"])


REGISTERED = [
    {"jobDefinitionName": "famli", "revision": 1, "jobDefinitionArn": "arn:x:famli:1",
     "containerProperties": {"command": ["famli", "Ref::input", "Ref::threads"]},
     "parameters": {"threads": "4"}},
    {"jobDefinitionName": "famli", "revision": 2, "jobDefinitionArn": "arn:x:famli:2",
     "containerProperties": {"command": ["famli", "Ref::input", "Ref::out_dir"]},
     "parameters": {}},
]


def step(job_definition: str, parameters: dict, command=None, n: int = 0):
    return SimpleNamespace(step=n, job_definition=job_definition, parameters=parameters,
                           command=command)


@pytest.mark.parametrize("analysis", [
    step("famli:1", {"input": "x"}),
    step("famli", {"input": "x", "out_dir": "o"}),
    step("arn:aws:batch:us-east-1:1:job-definition/famli:2", {"input": "x", "out_dir": "o"}),
    step("famli:2", {}, command=("echo", "no placeholders")),
])
def test_a_registered_definition_with_every_placeholder_filled_passes(analysis):
    check_references([analysis], REGISTERED, filename="wf.json")


@pytest.mark.parametrize("analysis, words", [
    (step("famly", {}), ["analyses[0].job_definition", "did you mean 'famli'",
                         "batchctl jobdef register"]),
    (step("famli:7", {}), ["no revision 7", "revisions: 1, 2"]),
    (step("famli", {"input": "x"}), ["analyses[0].parameters", "Ref::out_dir"]),
    (step("famli:1", {}, command=("run", "Ref::sample")), ["Ref::sample"]),
])
def test_missing_definitions_and_unfilled_placeholders_are_named(analysis, words):
    with pytest.raises(InvalidInput) as info:
        check_references([analysis], REGISTERED, filename="wf.json")
    assert info.value.message.startswith("wf.json: analyses[0].")
    for word in words:
        assert word in info.value.message
