"""Workflow definitions: strict JSON, every field validated, errors with path and fix."""

import json
from pathlib import Path

import pytest

from batchd.errors import InvalidInput
from batchd.inputs.definition import (
    SUBMIT_PAYLOAD_LIMIT,
    Analysis,
    RenderedJob,
    parse_definition,
    render_job,
)

REPO = Path(__file__).resolve().parents[2]
FIELDS = ["project_name", "workflow_name", "sample_name", "file_name", "organism", "read-group"]


def analysis(**overrides):
    base = {"job_definition": "famli:14", "queue": "spot-test",
            "outputs": ["s3://bucket/{project_name}/{sample_name}.json.gz"]}
    base.update(overrides)
    return base


def definition(*analyses, **top):
    body = {"workflow_name": "FAMLI", "analyses": list(analyses) or [analysis()]}
    body.update(top)
    return body


def parse(body, fields=FIELDS):
    text = body if isinstance(body, str) else json.dumps(body)
    return parse_definition(text, filename="workflow.json", available_fields=fields)


def error(body, fields=FIELDS) -> str:
    with pytest.raises(InvalidInput) as info:
        parse(body, fields)
    return info.value.message


def test_readme_example_without_comments_parses():
    body = definition(analysis(
        description="Analysis of WGS datasets with FAMLI (v0.9)",
        parameters={"sample_name": "{sample_name}", "file_name": "{file_name}",
                    "threads": "16", "batchsize": 200000000, "ratio": 0.5, "whole": 2.0},
        containerOverrides={"vcpus": 16, "memory": 122000}))
    wf = parse(body)
    assert wf.name == "FAMLI"
    assert wf.raw == body
    (a,) = wf.analyses
    assert a == Analysis(step=0, job_definition="famli:14", queue="spot-test",
                         outputs=("s3://bucket/{project_name}/{sample_name}.json.gz",),
                         parameters={"sample_name": "{sample_name}", "file_name": "{file_name}",
                                     "threads": "16", "batchsize": "200000000", "ratio": "0.5",
                                     "whole": "2"},
                         vcpus=16.0, memory=122000, command=None, environment={}, timeout=None,
                         description="Analysis of WGS datasets with FAMLI (v0.9)", retry=None)


def test_demo_workflow_parses():
    text = (REPO / "examples" / "demo" / "workflow.json").read_text()
    wf = parse(text)
    assert [a.step for a in wf.analyses] == [0, 1]
    assert wf.analyses[1].parameters["organism"] == "{organism}"


def test_seed_readme_example_gets_the_strict_json_hint():
    readme = (Path("/work/shared/reference/seed-README.md"))
    text = readme.read_text().split("``` json", 1)[1].split("```", 1)[0] if readme.exists() \
        else '{\n    # Name\n    "workflow_name": "FAMLI",\n}'
    message = error(text)
    assert message.startswith("workflow.json line 3 column 5: invalid JSON")
    assert "strict JSON: remove comments" in message


def test_trailing_comma_and_missing_comma_hints():
    message = error('{"workflow_name": "w",\n "analyses": [],\n}')
    assert "line 3" in message and "trailing comma" in message
    message = error('{"workflow_name": "w"\n "analyses": []}')
    assert "line 2 column 2" in message and "comma is probably missing" in message
    assert "double quotes" in error("{'workflow_name': 'w'}")


def test_other_json_problems():
    assert "is empty" in error("  ")
    assert "top level must be a JSON object" in error("[1, 2]")
    assert "NaN is not allowed" in error('{"workflow_name": "w", "analyses": [], "x": NaN}')
    message = error('{"workflow_name": "a", "workflow_name": "b", "analyses": []}')
    assert "'workflow_name' appears more than once" in message


@pytest.mark.parametrize("name", ["", "has space", "-x", "a..b", "x" * 65, 7])
def test_bad_workflow_names(name):
    message = error(definition(workflow_name=name))
    assert message.startswith("workflow.json: workflow_name: ")
    assert "letters, digits" in message


def test_missing_required_parts():
    assert "workflow.json: workflow_name: missing" in error({"analyses": [analysis()]})
    assert "workflow.json: analyses: missing" in error({"workflow_name": "w"})
    assert "non-empty list of analyses" in error({"workflow_name": "w", "analyses": []})
    message = error(definition({"outputs": ["x"]}))
    assert "analyses[0].job_definition: missing" in message
    assert "analyses[0].queue: missing" in message
    assert "analyses[0].outputs" not in message


def test_unknown_keys_get_did_you_mean():
    message = error(definition(analysis(quue="q", vcpus=4, retryStrategy={"attempts": 2}),
                               descripton="x"))
    assert "workflow.json: descripton: unknown key; did you mean 'description'?" in message
    assert "analyses[0].quue: unknown key; did you mean 'queue'?" in message
    assert "analyses[0].vcpus: unknown key; did you mean containerOverrides.vcpus?" in message
    assert "analyses[0].retryStrategy: unknown key; did you mean retry" in message


def test_many_problems_are_reported_together():
    bad = analysis(outputs=[], containerOverrides={"memory": "8G", "vcpu": 2}, timeout=30)
    message = error(definition(analysis(), bad))
    lines = message.splitlines()
    assert lines[0] == "workflow.json has 4 problems:"
    assert ("  workflow.json: analyses[1].containerOverrides.memory: expected a whole number of "
            "MiB (e.g. 8000), got \"8G\"") in lines
    assert any("analyses[1].outputs: expected a non-empty list" in line for line in lines)
    assert any("analyses[1].containerOverrides.vcpu: unknown key; did you mean 'vcpus'" in line
               for line in lines)
    assert any("analyses[1].timeout: must be at least 60 seconds, got 30" in line for line in lines)


def test_quoted_number_hint():
    message = error(definition(analysis(containerOverrides={"memory": "8000"})))
    assert "write the number without quotes" in message


@pytest.mark.parametrize("overrides, says", [
    ({"vcpus": 0}, "vcpus: expected a number of vCPUs greater than 0"),
    ({"vcpus": True}, "vcpus: expected a number of vCPUs"),
    ({"memory": 1.5}, "memory: expected a whole number of MiB"),
    ({"memory": 0}, "memory: must be at least 1 MiB"),
    ({"command": []}, "command: expected a non-empty list"),
    ({"command": ["run", 3]}, "command[1]: expected a string"),
    ({"environment": "A=1"}, "environment: expected an object"),
    ({"environment": [{"name": "A"}]}, "environment[0]: expected"),
    ({"environment": {"1A": "x"}}, "not a valid environment variable name"),
    ({"environment": {"AWS_BATCH_JOB_ID": "x"}}, "reserved by AWS Batch"),
    ({"environment": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "set twice"),
    ({"resourceRequirements": [{"type": "GPU", "value": "1"}]}, "supports \"VCPU\" and"),
    ({"resourceRequirements": [{"type": "MEMORY", "value": "8G"}]}, "whole number of MiB"),
    ({"resourceRequirements": [{"type": "VCPU", "value": "1"}], "vcpus": 2}, "give it only once"),
    ({"resourceRequirements": {"type": "VCPU"}}, "expected a list like"),
])
def test_container_override_errors(overrides, says):
    message = error(definition(analysis(containerOverrides=overrides)))
    assert "analyses[0].containerOverrides" in message
    assert says in message


def test_container_overrides_all_forms():
    wf = parse(definition(analysis(containerOverrides={
        "resourceRequirements": [{"type": "VCPU", "value": "0.5"},
                                 {"type": "MEMORY", "value": 2048}],
        "command": ["run.sh", "{sample_name}", "--rg={read-group}"],
        "environment": [{"name": "SAMPLE", "value": "{sample_name}"},
                        {"name": "THREADS", "value": 4}]})))
    a = wf.analyses[0]
    assert (a.vcpus, a.memory) == (0.5, 2048)
    assert a.command == ("run.sh", "{sample_name}", "--rg={read-group}")
    assert a.environment == {"SAMPLE": "{sample_name}", "THREADS": "4"}
    wf = parse(definition(analysis(containerOverrides={"environment": {"X": "{organism}"}})))
    assert wf.analyses[0].environment == {"X": "{organism}"}


def test_timeout_forms():
    assert parse(definition(analysis(timeout=3600))).analyses[0].timeout == 3600
    assert parse(definition(analysis(timeout={"attemptDurationSeconds": 120}))
                 ).analyses[0].timeout == 120
    assert "attemptDurationSeconds: must be at least 60" in error(
        definition(analysis(timeout={"attemptDurationSeconds": 5})))
    assert "expected a whole number of seconds" in error(definition(analysis(timeout="1h")))


def test_retry_validation():
    retry = {"max_attempts": 3, "spot_attempts": 5, "memory_factor": 1.5, "timeout_factor": 1,
             "max_memory": 64000}
    assert parse(definition(analysis(retry=retry))).analyses[0].retry == retry
    message = error(definition(analysis(retry={"max_attempts": 0, "memory_factor": 0.5,
                                               "max_memory": "lots", "attempts": 2})))
    assert "retry.max_attempts: must be at least 1" in message
    assert "retry.memory_factor: expected a factor at least 1" in message
    assert "retry.max_memory: expected a whole number of MiB" in message
    assert "retry.attempts: unknown key; did you mean 'max_attempts'?" in message
    assert "retry: expected an object" in error(definition(analysis(retry=3)))


def test_templates_are_validated_everywhere_with_paths():
    message = error(definition(analysis(
        outputs=["ok/{sample_name}", "bad/{smaple_name}"],
        parameters={"p": "{nope}"},
        containerOverrides={"command": ["{cmd}"], "environment": {"E": "{env}"}})))
    assert "analyses[0].outputs[1]: template 'bad/{smaple_name}' uses {smaple_name}" in message
    assert "analyses[0].parameters.p: template '{nope}'" in message
    assert "analyses[0].containerOverrides.command[0]: template '{cmd}'" in message
    assert "analyses[0].containerOverrides.environment.E: template '{env}'" in message
    assert "file_name, organism, project_name, read-group, sample_name, workflow_name" in message
    assert "empty {}" in error(definition(analysis(outputs=["x/{}"])))


def test_outputs_rules():
    assert "repeats analyses[0].outputs[0]" in error(definition(analysis(outputs=["a/{sample_name}",
                                                                                  "a/{sample_name}"])))
    assert "outputs[0]: is empty" in error(definition(analysis(outputs=[" "])))
    assert "expected a non-empty list of output paths" in error(definition(analysis(outputs="x")))


def test_parameter_rules():
    assert "parameter names may only use" in error(definition(analysis(parameters={"a b": "x"})))
    assert "parameters.flag: expected a string" in error(
        definition(analysis(parameters={"flag": True})))
    assert "parameters: expected an object" in error(definition(analysis(parameters=["x"])))


def test_job_definition_and_queue_names():
    ok = parse(definition(analysis(job_definition="arn:aws:batch:us-west-2:1:job-definition/x:3",
                                   queue="arn:aws:batch:us-west-2:1:job-queue/q")))
    assert ok.analyses[0].job_definition.endswith("x:3")
    assert "not a job definition name" in error(definition(analysis(job_definition="famli 14")))
    assert "not a job queue name" in error(definition(analysis(queue="spot/test")))
    assert "analyses[0].queue: expected a non-empty string" in error(
        definition(analysis(queue="")))


def test_raw_payload_over_the_aws_limit_is_rejected_before_rendering():
    big = {f"p{i}": "x" * 1000 for i in range(31)}
    message = error(definition(analysis(parameters=big)))
    assert f"at most {SUBMIT_PAYLOAD_LIMIT} bytes" in message
    assert message.startswith("workflow.json: analyses[0]: ")


VALUES = {"project_name": "proj", "workflow_name": "FAMLI", "sample_name": "s1",
          "file_name": "s3://in/s1.fq", "organism": "E. coli {weird} $(x)", "read-group": "rg1"}


def test_render_job_fills_everything():
    wf = parse(definition(analysis(
        outputs=["s3://b/{project_name}/{workflow_name}/{sample_name}.gz"],
        parameters={"in": "{file_name}", "org": "{organism}", "n": 16},
        containerOverrides={"command": ["run", "{sample_name}"],
                            "environment": {"RG": "{read-group}"}})))
    job = render_job(wf.analyses[0], VALUES)
    assert job == RenderedJob(outputs=("s3://b/proj/FAMLI/s1.gz",),
                              parameters={"in": "s3://in/s1.fq", "org": "E. coli {weird} $(x)",
                                          "n": "16"},
                              command=("run", "s1"), environment={"RG": "rg1"})
    plain = render_job(parse(definition()).analyses[0], VALUES)
    assert plain.command is None and plain.environment == {}


def test_render_job_rejects_rendered_payload_over_limit_naming_the_sample():
    a = parse(definition(analysis(parameters={"org": "{organism}"}))).analyses[0]
    with pytest.raises(InvalidInput) as info:
        render_job(a, dict(VALUES, organism="é" * 20_000))  # escapes to 6 bytes each in JSON
    assert "sample 's1'" in info.value.message
    assert f"at most {SUBMIT_PAYLOAD_LIMIT} bytes" in info.value.message
    render_job(a, dict(VALUES, organism="x" * 20_000))  # under the limit: fine


def test_render_job_rejects_empty_output():
    a = parse(definition(analysis(outputs=["{organism}"]))).analyses[0]
    with pytest.raises(InvalidInput, match=r"sample 's1': analyses\[0\].outputs\[0\]"):
        render_job(a, dict(VALUES, organism=""))


def test_render_job_missing_value_names_sample():
    a = parse(definition()).analyses[0]
    with pytest.raises(InvalidInput, match=r"sample 's1', step 0: .*\{project_name\}"):
        render_job(a, {"sample_name": "s1"})
