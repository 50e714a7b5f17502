
import dataclasses

import pytest

from batchd.config.settings import load_settings
from batchd.errors import InvalidInput


def test_layers_defaults_then_toml_then_env_then_flags(tmp_path):
    config = tmp_path / "batchd.toml"
    config.write_text('backend = "aws"\npoll_interval = 20\n[aws]\nrate_limit = 30\n'
                      'region = "eu-west-1"\n[queues."spot-q"]\nmax_in_flight = 50\n'
                      '[retry]\nmax_attempts = 4\n')
    env = {"BATCHD_POLL_INTERVAL": "15", "BATCHD_RATE_LIMIT": "25"}
    settings = load_settings({"config_file": str(config), "rate_limit": 10.0}, env=env)
    assert settings.backend == "aws"            # from the file
    assert settings.poll_interval == 15.0       # env beats file
    assert settings.rate_limit == 10.0          # flag beats env
    assert settings.aws_region == "eu-west-1"
    assert settings.cap_for("spot-q") == 50 and settings.cap_for("other") == 1000
    assert settings.retry.max_attempts == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.backend = "local"  # frozen


def test_defaults_are_usable_without_root(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    settings = load_settings({}, env={})
    assert settings.backend == "local"
    assert settings.effective_poll_interval == 1.0
    assert load_settings({"backend": "aws"}, env={}).effective_poll_interval == 30.0


@pytest.mark.parametrize("text, message", [
    ("poll_interval = 'soon'\n", "invalid value 'soon' for poll_interval"),
    ("backend = 'cloud'\n", "expected one of local, aws"),
    ("[submit]\norder = 'random'\n", "expected one of breadth, depth"),
    ("[aws]\nregoin = 'x'\n", "unknown key [aws] regoin"),
    ("nonsense = 1\n", "unknown setting 'nonsense'"),
    ("backend = \n", "batchd.toml"),
])
def test_bad_config_names_file_and_key(tmp_path, text, message):
    config = tmp_path / "batchd.toml"
    config.write_text(text)
    with pytest.raises(InvalidInput) as err:
        load_settings({"config_file": str(config)}, env={})
    assert message in err.value.message


def test_removed_direct_calls_is_accepted_and_ignored(tmp_path):
    """`[aws] direct_calls` (and its variable) went with the direct-call modules: an old
    config must still load, whatever value it gives, and say where the setting was found."""
    config = tmp_path / "c.toml"
    config.write_text("[aws]\ndirect_calls = false\nregion = 'eu-west-1'\n")
    settings = load_settings({"config_file": str(config)}, env={})
    assert settings.aws_region == "eu-west-1"
    assert settings.ignored == (("aws_direct_calls", f"{config}: [aws] direct_calls"),)
    config.write_text("[aws]\ndirect_calls = 'maybe'\n")
    settings = load_settings({"config_file": str(config)},
                             env={"BATCHD_AWS_DIRECT_CALLS": "0"})
    assert [where for _, where in settings.ignored] == [
        f"{config}: [aws] direct_calls", "environment variable BATCHD_AWS_DIRECT_CALLS"]
    assert load_settings({}, env={}).ignored == ()
    assert not hasattr(settings, "aws_direct_calls")


def test_submit_order_from_toml_and_env(tmp_path):
    config = tmp_path / "batchd.toml"
    config.write_text("[submit]\norder = 'depth'\n")
    assert load_settings({"config_file": str(config)}, env={}).submit_order == "depth"
    assert load_settings({}, env={"BATCHD_SUBMIT_ORDER": "depth"}).submit_order == "depth"
    assert load_settings({}, env={}).submit_order == "breadth"


def test_bad_env_names_the_variable():
    with pytest.raises(InvalidInput) as err:
        load_settings({}, env={"BATCHD_MAX_IN_FLIGHT": "many"})
    assert "BATCHD_MAX_IN_FLIGHT" in err.value.message


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        load_settings({"config_file": str(tmp_path / "nope.toml")}, env={})


# Each of these once loaded: a zero poll interval or rate made a loop spin or never call AWS,
# a NaN compared false everywhere, and TOML's `true` silently became 1.
@pytest.mark.parametrize("layer, name, value, expected", [
    ("toml", "poll_interval", "0", "poll_interval: must be between"),
    ("toml", "poll_interval", "1e9", "poll_interval: must be between"),
    ("toml", "poll_interval", "nan", "poll_interval: must be a finite number"),
    ("toml", "poll_interval", "inf", "poll_interval: must be a finite number"),
    ("toml", "poll_interval", "true", "poll_interval: expected a number"),
    ("toml", "describe_concurrency", "10000", "describe_concurrency: must be between"),
    ("toml", "max_in_flight", "0", "max_in_flight: must be between"),
    ("env", "rate_limit", "0", "BATCHD_RATE_LIMIT"),
    ("env", "rate_limit", "-5", "BATCHD_RATE_LIMIT"),
    ("env", "poll_interval", "NaN", "BATCHD_POLL_INTERVAL"),
    ("flag", "rate_limit", 0.0, "--rate-limit"),
    ("flag", "poll_interval", -1.0, "--poll-interval"),
])
def test_zero_negative_absurd_and_non_finite_numbers_are_refused(tmp_path, layer, name, value,
                                                                 expected):
    flags: dict = {}
    env: dict = {}
    if layer == "toml":
        config = tmp_path / "batchd.toml"
        section = "[aws]\n" if name == "rate_limit" else ""
        config.write_text(f"{section}{name} = {value}\n")
        flags["config_file"] = str(config)
    elif layer == "env":
        env[f"BATCHD_{name.upper()}"] = value
    else:
        flags[name] = value
    with pytest.raises(InvalidInput) as err:
        load_settings(flags, env=env)
    assert expected in err.value.message
    assert "\n" not in err.value.message


def test_unknown_toml_key_names_the_nearest_valid_one(tmp_path):
    config = tmp_path / "batchd.toml"
    config.write_text("pol_interval = 5\n")
    with pytest.raises(InvalidInput) as err:
        load_settings({"config_file": str(config)}, env={})
    assert "did you mean 'poll_interval'?" in err.value.message


def test_admin_group_from_the_access_section_top_level_and_env(tmp_path):
    config = tmp_path / "batchd.toml"
    config.write_text("[access]\nadmin_group = 'lab admins@ad'\n")
    assert load_settings({"config_file": str(config)}, env={}).admin_group == "lab admins@ad"
    config.write_text("admin_group = 'managers'\n")        # the older spelling still works
    assert load_settings({"config_file": str(config)}, env={}).admin_group == "managers"
    config.write_text("[access]\nadmin_group = ''\n")       # no group: root and daemon user
    assert load_settings({"config_file": str(config)}, env={}).admin_group == ""
    assert load_settings({}, env={"BATCHD_ADMIN_GROUP": "ops"}).admin_group == "ops"
    assert load_settings({}, env={}).admin_group == "batchd-admin"


@pytest.mark.parametrize("value", ["5", "'a:b'", "'a,b'", "' padded'", '"x\\u0007"',
                                   "'" + "g" * 257 + "'"])
def test_a_bad_admin_group_names_the_key(tmp_path, value):
    config = tmp_path / "batchd.toml"
    config.write_text(f"[access]\nadmin_group = {value}\n")
    with pytest.raises(InvalidInput) as err:
        load_settings({"config_file": str(config)}, env={})
    assert "[access] admin_group" in err.value.message and "group name" in err.value.message


# Each of these once loaded: the [retry] fields fell back to the range [0, inf), so a policy
# that never ran a job (0 attempts), shrank its memory after an out-of-memory failure (factor
# 0.5) or asked for no memory at all was accepted. The bounds are a step's "retry" bounds.
@pytest.mark.parametrize("text, expected", [
    ("max_attempts = 0", "must be between 1 and 20"),
    ("max_attempts = 21", "must be between 1 and 20"),
    ("spot_attempts = 0", "must be between 1 and 100"),
    ("memory_factor = 0", "must be between 1 and 16"),
    ("memory_factor = 0.5", "must be between 1 and 16"),
    ("memory_factor = 1e9", "must be between 1 and 16"),
    ("timeout_factor = 0", "must be between 1 and 16"),
    ("max_memory = 0", "must be between 1 and 25165824"),
    ("max_memory = 1e12", "must be between 1 and 25165824"),
])
def test_retry_defaults_out_of_range_are_refused(tmp_path, text, expected):
    config = tmp_path / "batchd.toml"
    config.write_text(f"[retry]\n{text}\n")
    with pytest.raises(InvalidInput) as err:
        load_settings({"config_file": str(config)}, env={})
    assert f"[retry] {text.split()[0]}: invalid value" in err.value.message
    assert expected in err.value.message


def test_retry_defaults_at_their_bounds_load(tmp_path):
    config = tmp_path / "batchd.toml"
    config.write_text("[retry]\nmax_attempts = 20\nspot_attempts = 1\nmemory_factor = 16\n"
                      "max_memory = 25165824\ntimeout_factor = 1.0\n")
    retry = load_settings({"config_file": str(config)}, env={}).retry
    assert (retry.max_attempts, retry.spot_attempts, retry.memory_factor, retry.max_memory,
            retry.timeout_factor) == (20, 1, 16.0, 25165824, 1.0)
    assert isinstance(retry.max_attempts, int) and isinstance(retry.memory_factor, float)


# Once a TOML number or list became a path named after it: `socket = 5` made ./5.
@pytest.mark.parametrize("text", ["socket = 5", "state_dir = ['/var/lib/batchd']"])
def test_a_path_setting_must_be_text(tmp_path, text):
    config = tmp_path / "batchd.toml"
    config.write_text(text + "\n")
    with pytest.raises(InvalidInput) as err:
        load_settings({"config_file": str(config)}, env={})
    assert "expected a path" in err.value.message
