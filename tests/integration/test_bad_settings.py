"""A bad setting stops a real `batchd` process at start-up: exit code 2 (systemd's
RestartPreventExitStatus, so no crash loop), one line on stderr naming the setting and the fix,
no traceback, no hang, and nothing left behind: every file and directory under the test's root
is exactly as it was before the start (pre-existing directories included).

Each entry of CASES is (id, how to set it up, words the message must contain). Paths may use
`{root}`, a fresh directory under /tmp. `ro` directories are made read-only (mode 0555); as
root the daemon then runs without CAP_DAC_OVERRIDE (setpriv) so that the mode binds it as it
binds the `batchd` user of the systemd unit.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.daemon_harness import REPO

pytestmark = pytest.mark.integration

LONG = "x" * 110
AWS_CONFIG = "[default]\nregion = us-east-1\n\n[profile lab]\nregion = useast1\n"


@dataclass(frozen=True)
class Case:
    id: str
    words: tuple[str, ...]             # all must appear in the one line, setting name first
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)   # relative path -> content
    dirs: tuple[str, ...] = ()
    ro: tuple[str, ...] = ()
    # Replace the default --socket / --state-dir (below {root}) with the case's own.
    own_socket: bool = False
    own_state: bool = False


def toml(text: str, *args: str, **kw) -> dict:
    return dict(files={"batchd.toml": text, **kw.pop("files", {})},
                args=("--config", "{root}/batchd.toml", *args), **kw)


CASES: list[Case] = [
    # -- the socket --------------------------------------------------------------------
    Case("socket-dir-read-only", ("socket", "{root}/ro", "not writable", "--socket"),
         args=("--socket", "{root}/ro/batchd.sock"), dirs=("ro",), ro=("ro",),
         own_socket=True),
    Case("socket-dir-below-read-only", ("socket", "cannot create {root}/ro/run", "not writable"),
         args=("--socket", "{root}/ro/run/batchd.sock"), dirs=("ro",), ro=("ro",),
         own_socket=True),
    Case("socket-below-regular-file", ("socket", "{root}/somefile is a regular file",
                                       "choose another socket"),
         args=("--socket", "{root}/somefile/batchd.sock"), files={"somefile": "data\n"},
         own_socket=True),
    Case("socket-path-too-long", ("socket", "at most 107", "shorter"),
         args=("--socket", f"{{root}}/{LONG}/batchd.sock"), own_socket=True),
    Case("socket-path-too-long-from-env", ("socket", "at most 107", "BATCHD_SOCKET"),
         env={"BATCHD_SOCKET": f"{{root}}/{LONG}/batchd.sock"}, own_socket=True),
    Case("socket-is-a-directory", ("socket", "is a directory", "batchd.sock"),
         args=("--socket", "{root}/run"), dirs=("run",), own_socket=True),
    Case("socket-empty-in-toml", ("socket", "batchd.toml", "empty"),
         **toml('socket = ""\n'), own_socket=True),
    # -- the state directory -------------------------------------------------------------
    Case("state-dir-read-only", ("state_dir", "{root}/ro is not writable", "--state-dir"),
         args=("--state-dir", "{root}/ro"), dirs=("ro",), ro=("ro",), own_state=True),
    Case("state-dir-below-read-only", ("state_dir", "cannot create {root}/ro/state"),
         args=("--state-dir", "{root}/ro/state"), dirs=("ro",), ro=("ro",), own_state=True),
    Case("state-dir-below-regular-file", ("state_dir", "{root}/somefile is a regular file"),
         args=("--state-dir", "{root}/somefile/state"), files={"somefile": ""},
         own_state=True),
    Case("state-dir-from-env-below-regular-file", ("state_dir", "regular file",
                                                    "BATCHD_STATE_DIR"),
         env={"BATCHD_STATE_DIR": "{root}/somefile/state"}, files={"somefile": ""},
         own_state=True),
    # Fails after the lock and a new database were made: both must go, the directory and
    # its file stay.
    Case("state-dir-local-is-a-file", ("state_dir", "{root}/state/local"),
         files={"state/local": "not a directory\n"}),
    Case("state-dir-database-is-a-directory", ("state_dir", "batchd.sqlite3"),
         dirs=("state/batchd.sqlite3",)),
    Case("state-dir-empty-in-toml", ("state_dir", "batchd.toml", "empty"),
         **toml('state_dir = ""\n'), own_state=True),
    # -- AWS profile and region (checked locally, no network) ------------------------------
    Case("aws-profile-not-found", ("aws_profile", "'nope'", "{root}/aws/config"),
         args=("--backend", "aws"), env={"BATCHD_AWS_PROFILE": "nope"},
         files={"aws/config": AWS_CONFIG}),
    Case("aws-profile-env-not-found", ("AWS_PROFILE", "'nope'", "[aws] profile"),
         args=("--backend", "aws"), env={"AWS_PROFILE": "nope"},
         files={"aws/config": AWS_CONFIG}),
    Case("aws-profile-in-toml-not-found", ("aws_profile", "'labb'", "aws configure"),
         **toml('backend = "aws"\n[aws]\nprofile = "labb"\n', files={"aws/config": AWS_CONFIG})),
    Case("aws-no-region", ("aws_region", "no AWS region", "AWS_DEFAULT_REGION"),
         args=("--backend", "aws")),
    Case("aws-region-empty-in-toml", ("region", "batchd.toml", "empty"),
         **toml('backend = "aws"\n[aws]\nregion = ""\n')),
    Case("aws-region-not-a-region-in-toml", ("region", "batchd.toml", "'mars'", "us-east-1"),
         **toml('backend = "aws"\n[aws]\nregion = "mars"\n')),
    Case("aws-region-env-not-a-region", ("AWS_REGION", "'US East'", "us-east-1"),
         args=("--backend", "aws"), env={"AWS_REGION": "US East"}),
    Case("aws-profile-region-not-a-region", ("region", "profile 'lab'", "'useast1'"),
         args=("--backend", "aws"), env={"BATCHD_AWS_PROFILE": "lab"},
         files={"aws/config": AWS_CONFIG}),
    # -- numbers, choices and flags (one converter for all three layers) ---------------------
    Case("poll-interval-negative-flag", ("poll_interval", "--poll-interval", "between 0.01"),
         args=("--poll-interval", "-1")),
    Case("poll-interval-zero-flag", ("poll_interval", "--poll-interval", "between"),
         args=("--poll-interval", "0")),
    Case("poll-interval-absurd-flag", ("poll_interval", "86400"),
         args=("--poll-interval", "1e9")),
    Case("poll-interval-zero-env", ("poll_interval", "BATCHD_POLL_INTERVAL"),
         env={"BATCHD_POLL_INTERVAL": "0"}),
    Case("poll-interval-not-a-number-toml", ("poll_interval", "batchd.toml", "expected a number"),
         **toml("poll_interval = [1]\n")),
    Case("poll-interval-huge-integer-toml", ("poll_interval", "batchd.toml", "finite"),
         **toml(f"poll_interval = {'9' * 400}\n")),
    Case("toml-integer-beyond-python", ("batchd.toml", "4300 digits"),
         **toml(f"poll_interval = {'9' * 5000}\n")),
    Case("toml-not-utf8", ("batchd.toml", "UTF-8"), **toml("backend = 'local' # \udcff\n")),
    Case("rate-limit-zero-flag", ("rate_limit", "--rate-limit", "between 0.1"),
         args=("--rate-limit", "0")),
    Case("rate-limit-nan-flag", ("rate_limit", "--rate-limit", "finite"),
         args=("--rate-limit", "nan")),
    Case("rate-limit-negative-toml", ("rate_limit", "batchd.toml", "[aws]"),
         **toml("[aws]\nrate_limit = -5\n")),
    Case("max-in-flight-fraction-flag", ("max_in_flight", "--max-in-flight", "whole number"),
         args=("--max-in-flight", "1.5")),
    Case("local-memory-word-flag", ("local_memory", "--local-memory", "whole number"),
         args=("--local-memory", "lots")),
    Case("backend-unknown-flag", ("backend", "--backend", "local, aws"),
         args=("--backend", "cloud")),
    Case("log-level-unknown-flag", ("log_level", "--log-level", "debug, info"),
         args=("--log-level", "loud")),
    Case("flag-misspelt", ("--poll-intervall", "batchd --help"),
         args=("--poll-intervall", "5")),
    Case("flag-without-value", ("--rate-limit", "expected one argument"),
         args=("--rate-limit",)),
    Case("toml-syntax-error", ("batchd.toml", "line 2"), **toml("backend = 'local'\n[aws\n")),
    Case("toml-misspelt-key", ("batchd.toml", "did you mean 'poll_interval'"),
         **toml("poll_intervall = 3\n")),
    Case("config-file-is-a-directory", ("config file", "{root}/conf", "--config"),
         args=("--config", "{root}/conf"), dirs=("conf",)),
    Case("config-file-missing", ("config file", "{root}/nope.toml", "does not exist"),
         env={"BATCHD_CONFIG": "{root}/nope.toml"}),
]


def _fill(text: str, root: Path) -> str:
    return text.replace("{root}", str(root))


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            found[str(path.relative_to(root))] = (kind, 0 if kind == "dir" else st.st_size)
    return found


def _prefix(case: Case) -> list[str]:
    if not case.ro or os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a 0555 directory does not bind root")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _env(root: Path, case: Case) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHD_", "AWS_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(AWS_CONFIG_FILE=str(root / "aws" / "config"),
               AWS_SHARED_CREDENTIALS_FILE=str(root / "aws" / "credentials"),
               AWS_EC2_METADATA_DISABLED="true")
    env.update({k: _fill(v, root) for k, v in case.env.items()})
    return env


def _run(root: Path, case: Case) -> subprocess.CompletedProcess:
    args = [_fill(a, root) for a in case.args]
    if not case.own_socket:
        args += ["--socket", str(root / "run" / "batchd.sock")]
    if not case.own_state:
        args += ["--state-dir", str(root / "state")]
    try:
        # The timeout is the hang guard, not a measurement: a start-up check that waited on
        # something would never return at all.
        return subprocess.run([*_prefix(case), sys.executable, "-m", "batchd", *args],
                              capture_output=True, text=True, env=_env(root, case), cwd=root,
                              timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"batchd hung on {case.id}: {exc.stderr!r}") from None


@pytest.fixture
def root():
    path = Path(tempfile.mkdtemp(prefix="bs-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_setting_is_one_line_exit_2_and_leaves_nothing(root, case):
    for rel in case.dirs:
        (root / rel).mkdir(parents=True)
    for rel, content in case.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content, errors="surrogateescape")   # \udcff -> byte 0xff
    for rel in case.ro:
        (root / rel).chmod(0o555)
    before = _tree(root)
    result = _run(root, case)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("batchd: ")
    for word in case.words:
        assert _fill(word, root) in lines[0], (word, lines[0])
    assert _tree(root) == before


def test_refused_second_daemon_removes_what_it_created_only(local_daemon):
    """Exit 3 (a live daemon on the socket): the state directory this start made is gone,
    the live daemon's socket and state are untouched and it still answers."""
    other = local_daemon.root / "other" / "state"
    result = subprocess.run(
        [sys.executable, "-m", "batchd", "--socket", str(local_daemon.socket), "--state-dir",
         str(other)], capture_output=True, text=True, env=local_daemon.env, timeout=120)
    assert result.returncode == 3 and len(result.stderr.splitlines()) == 1, result.stderr
    assert not (local_daemon.root / "other").exists()
    assert local_daemon.socket.exists() and local_daemon.state_dir.is_dir()
    local_daemon.ctl("ping")
    assert local_daemon.stop(signal.SIGTERM) == 0


def test_refused_on_a_locked_state_dir_removes_nothing_of_it(local_daemon):
    """Exit 3 (the state directory is locked by a live daemon): nothing is made for the socket,
    and nothing in the state directory, whose lock this start never held, is removed (the live
    daemon may have created it a moment ago)."""
    before = set(_tree(local_daemon.state_dir))
    result = subprocess.run(
        [sys.executable, "-m", "batchd", "--socket", str(local_daemon.root / "b" / "b.sock"),
         "--state-dir", str(local_daemon.state_dir)], capture_output=True, text=True,
        env=local_daemon.env, timeout=120)
    assert result.returncode == 3 and len(result.stderr.splitlines()) == 1, result.stderr
    assert not (local_daemon.root / "b").exists()
    assert before <= set(_tree(local_daemon.state_dir))
    local_daemon.ctl("ping")
