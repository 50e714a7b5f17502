"""Job definitions (RegisterJobDefinition format): validation, Ref:: filling, resources."""

import json
from pathlib import Path

import pytest

from batchd.errors import InvalidInput
from batchd.inputs.jobdefs import fill_command, resources, validate_job_definition

REPO = Path(__file__).resolve().parents[2]


def spec(**container):
    props = {"image": "busybox", "command": ["echo", "Ref::sample"], "vcpus": 1, "memory": 512}
    props.update(container)
    return {"jobDefinitionName": "echo-1", "containerProperties": props}


def error(body) -> str:
    with pytest.raises(InvalidInput) as info:
        validate_job_definition(body, filename="jd.json")
    return info.value.message


@pytest.mark.parametrize("name", ["count-words.json", "summarise.json"])
def test_demo_job_definitions_are_valid_and_unchanged(name):
    body = json.loads((REPO / "examples" / "demo" / "jobdefs" / name).read_text())
    assert validate_job_definition(body, filename=name) == body


def test_defaults_and_normalisation_without_mutating_input():
    body = {"jobDefinitionName": "x", "parameters": {"threads": 16, "ref": "hg38"},
            "tags": {"team": "lab"},
            "containerProperties": {"command": ["run"],
                                    "resourceRequirements": [{"type": "VCPU", "value": 2},
                                                             {"type": "MEMORY", "value": 4096.0}],
                                    "environment": [{"name": "N", "value": 3}]}}
    original = json.loads(json.dumps(body))
    out = validate_job_definition(body, filename="jd.json")
    assert body == original
    assert out["type"] == "container"
    assert out["parameters"] == {"threads": "16", "ref": "hg38"}
    assert out["containerProperties"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}]
    assert out["containerProperties"]["environment"] == [{"name": "N", "value": "3"}]


def test_other_aws_fields_pass_through():
    body = spec(jobRoleArn="arn:aws:iam::1:role/r", privileged=False)
    body.update(platformCapabilities=["EC2"], propagateTags=True,
                timeout={"attemptDurationSeconds": 600}, retryStrategy={"attempts": 3})
    out = validate_job_definition(body, filename="jd.json")
    assert out["containerProperties"]["jobRoleArn"] == "arn:aws:iam::1:role/r"
    assert out["timeout"] == {"attemptDurationSeconds": 600}


@pytest.mark.parametrize("body, says", [
    ({"containerProperties": {"command": ["x"], "vcpus": 1, "memory": 1}},
     "jd.json: jobDefinitionName: missing"),
    (dict(spec(), jobDefinitionName="has space"), "jobDefinitionName: got \"has space\""),
    (dict(spec(), jobDefinitionName="x" * 129), "1-128 letters"),
    (dict(spec(), type="multinode"), "type: batchd runs \"container\""),
    ({"jobDefinitionName": "x"}, "containerProperties: missing"),
    (spec(command=[]), "containerProperties.command: expected a non-empty list"),
    (spec(command="echo hi"), "containerProperties.command: expected a non-empty list"),
    (spec(command=["echo", 1]), "containerProperties.command"),
    (spec(vcpus=1.5), "fractional vCPUs go in resourceRequirements"),
    (spec(memory="2G"), "containerProperties.memory: expected a whole number of MiB"),
    (spec(vcpus=0), "containerProperties.vcpus: expected a whole number of vCPUs from 1 to 448"),
    (spec(comand=["x"]), "containerProperties.comand: unknown key; did you mean 'command'?"),
    (dict(spec(), paramters={}), "jd.json: paramters: unknown key; did you mean 'parameters'?"),
    (dict(spec(), parameters={"a": None}), "parameters.a: expected a string"),
    (dict(spec(), timeout={"attemptDurationSeconds": 30}), "timeout: expected"),
    (dict(spec(), timeout=3600), "timeout: expected"),
    (dict(spec(), retryStrategy={"attempts": 11}), "retryStrategy: expected"),
    (spec(resourceRequirements=[{"type": "VCPU", "value": "2"}]), "VCPU is also given as"),
    (spec(vcpus=None, resourceRequirements=[{"type": "VCPU", "value": "x"}]),
     "resourceRequirements[0].value: expected a number greater than 0"),
    (spec(resourceRequirements=[{"type": "CPU", "value": "1"}]), ".type: expected one of"),
    (spec(environment={"A": "1"}), "environment: expected a list"),
    (spec(environment=[{"name": "AWS_BATCH_X", "value": "1"}]), "reserved by AWS Batch"),
    (spec(environment=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]), "set twice"),
])
def test_errors_name_the_json_path(body, says):
    if "containerProperties" in body:
        body["containerProperties"] = {k: v for k, v in body["containerProperties"].items()
                                       if v is not None}
    message = error(body)
    assert says in message


def test_missing_resources():
    body = spec()
    del body["containerProperties"]["vcpus"], body["containerProperties"]["memory"]
    assert "containerProperties: no vCPUs and memory given" in error(body)
    body["containerProperties"]["resourceRequirements"] = [{"type": "VCPU", "value": "1"}]
    message = error(body)
    assert "no memory given" in message and "vCPUs and" not in message


def test_several_problems_in_one_message():
    message = error({"jobDefinitionName": "", "containerProperties": {"command": []}})
    assert message.startswith("jd.json has 3 problems:")


def test_not_an_object():
    assert "must be a JSON object" in error(["x"])


def test_fill_command_whole_and_inside_elements():
    command = ["run", "Ref::input", "--out=Ref::output/x", "Ref::input_dir", "Ref::missing"]
    params = {"input": "in.fq", "input_dir": "/data", "output": "o"}
    assert fill_command(command, params) == ["run", "in.fq", "--out=o/x", "/data",
                                             "Ref::missing"]


def test_fill_command_longest_name_wins_and_unknown_longer_name_untouched():
    assert fill_command(["Ref::ab Ref::a"], {"a": "1", "ab": "2"}) == ["2 1"]
    assert fill_command(["Ref::input_x"], {"input": "1"}) == ["Ref::input_x"]
    assert fill_command(["Ref::input.txt"], {"input": "1"}) == ["1.txt"]


def test_fill_command_values_are_not_refilled():
    assert fill_command(["Ref::a", "Ref::b"], {"a": "Ref::b", "b": "x"}) == ["Ref::b", "x"]
    assert fill_command(["Ref::a"], {"a": "\\1 $(x) Ref::"}) == ["\\1 $(x) Ref::"]


def test_fill_command_no_parameters_returns_a_copy():
    command = ["a", "Ref::x"]
    out = fill_command(command, {})
    assert out == command and out is not command


def test_resources_from_either_form():
    assert resources({"vcpus": 2, "memory": 1024}) == (2.0, 1024)
    assert resources({"resourceRequirements": [{"type": "VCPU", "value": "0.25"},
                                               {"type": "MEMORY", "value": "512"},
                                               {"type": "GPU", "value": "1"}]}) == (0.25, 512)
    assert resources({"command": ["x"]}) == (None, None)


def test_environment_name_of_the_wrong_type_is_a_problem_not_a_crash():
    spec = {"jobDefinitionName": "x", "containerProperties": {
        "command": ["true"], "vcpus": 1, "memory": 64,
        "environment": [{"name": ["x"], "value": "1"}]}}
    with pytest.raises(InvalidInput) as err:
        validate_job_definition(spec, filename="jd.json")
    assert "containerProperties.environment[0].name" in err.value.message
