"""Project/workflow name rules and deterministic, collision-free AWS job names."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchd.errors import InvalidInput
from batchd.naming import NAME_RE, job_name, validate_name

AWS_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


@pytest.mark.parametrize("name", ["p", "proj-1", "My_Project.v2", "a" * 64, "0abc"])
def test_valid_names(name):
    validate_name("project", name)
    assert NAME_RE.fullmatch(name)


@pytest.mark.parametrize("name, says", [
    ("", "empty"),
    ("a..b", "'..'"),
    ("-lead", "starts with '-'"),
    (".hidden", "starts with '.'"),
    ("has space", "' '"),
    ("slash/name", "'/'"),
    ("a" * 65, "65 characters"),
])
def test_invalid_names_explain_kind_value_and_rules(name, says):
    with pytest.raises(InvalidInput) as info:
        validate_name("workflow", name)
    message = info.value.message
    assert "workflow name" in message
    assert says in message
    assert "letters, digits" in message
    if name:
        assert repr(name) in message


def test_job_name_is_readable():
    name = job_name("proj", "famli", "sample-01", 2, 3)
    assert name.startswith("proj-famli-sample-01-s2-a3-")
    assert re.fullmatch(r"proj-famli-sample-01-s2-a3-[0-9a-f]{10}", name)


def test_job_name_sanitises_and_truncates_long_parts():
    name = job_name("p" * 64, "w.v2" * 16, "s" * 128, 12, 7)
    assert len(name) <= 128
    assert AWS_JOB_NAME.fullmatch(name)
    assert "-s12-a7-" in name


def test_job_names_differ_when_sanitising_would_merge_them():
    # "a.b" and "a_b" sanitise to the same readable text; the hash keeps them apart.
    assert job_name("p", "w", "a.b", 0, 1) != job_name("p", "w", "a_b", 0, 1)
    # Moving a hyphen between parts must not collide either.
    assert job_name("a-b", "c", "s", 0, 1) != job_name("a", "b-c", "s", 0, 1)
    # Parts differing only after the truncation point.
    assert job_name("p", "w", "s" * 120 + "1", 0, 1) != job_name("p", "w", "s" * 120 + "2", 0, 1)


def test_job_name_is_deterministic_across_calls():
    assert job_name("p", "w", "s", 1, 1) == job_name("p", "w", "s", 1, 1)
    # Pinned: the name is how lost submissions are reconciled after an upgrade or restart,
    # so it must never change between versions.
    assert job_name("p", "w", "s", 1, 1) == "p-w-s-s1-a1-" + __import__("hashlib").sha256(
        b'["p", "w", "s", 1, 1]').hexdigest()[:10]


identities = st.tuples(st.text(max_size=70), st.text(max_size=70), st.text(max_size=140),
                       st.integers(0, 10_000), st.integers(1, 1_000))


@given(identities)
def test_property_always_a_valid_aws_job_name(identity):
    name = job_name(*identity)
    assert len(name) <= 128
    assert AWS_JOB_NAME.fullmatch(name), name
    assert job_name(*identity) == name


@settings(max_examples=50)
@given(st.lists(identities, min_size=50, max_size=400, unique=True))
def test_property_injective(ids):
    names = {job_name(*identity) for identity in ids}
    assert len(names) == len(ids)


def test_injective_on_a_large_systematic_set():
    ids = [(p, w, f"sample{s}", step, attempt)
           for p in ("p", "p.", "p_") for w in ("w", "w-1")
           for s in range(300) for step in range(3) for attempt in (1, 2)]
    assert len({job_name(*i) for i in ids}) == len(ids)
