"""Start-up checks that need the file system or the AWS config, run before anything is created.

settings.py checks each value on its own (type, range); this module checks what only the
machine can answer: can the socket and the state directory be created where they are asked
for, does the socket path fit in AF_UNIX's sun_path, does the AWS profile exist and is the
region region-shaped. Each failure is an InvalidInput with one line naming the setting and the
fix, so the daemon exits 2 (systemd's RestartPreventExitStatus) instead of crash-looping on a
traceback. Nothing here touches the network.

`Undo` removes what a start that failed half-way created (directories, a new database, the lock
file) and nothing that was there before it.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from batchd.config.settings import _REGION, Settings
from batchd.errors import InvalidInput

# sun_path is 108 bytes on Linux, including the terminating NUL.
SUN_PATH_MAX = 107

_WHERE = {"socket": "--socket, BATCHD_SOCKET or `socket` in the config file",
          "state_dir": "--state-dir, BATCHD_STATE_DIR or `state_dir` in the config file",
          "aws_region": "[aws] region in the config file or BATCHD_AWS_REGION",
          "aws_profile": "[aws] profile in the config file or BATCHD_AWS_PROFILE"}


def is_region(text: str) -> bool:
    return bool(_REGION.fullmatch(text))


def fail(name: str, problem: str, fix: str | None = None) -> InvalidInput:
    fix = fix or f"fix it or choose another {name} ({_WHERE[name]})"
    return InvalidInput(f"{name}: {problem}; {fix}")


def _first_existing(path: Path) -> Path:
    """The path itself or its nearest ancestor that exists (even as a broken symlink)."""
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    return probe


def _unwritable_reason(directory: Path) -> str | None:
    if os.access(directory, os.W_OK | os.X_OK):
        return None
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return f"{directory} is on a read-only file system"
    except OSError:
        pass
    return f"{directory} is not writable by uid {os.geteuid()}"


def check_directory(name: str, path: Path) -> None:
    """`path` must be a writable directory, or creatable below a writable one."""
    found = _first_existing(path)
    try:
        mode = os.stat(found).st_mode
    except OSError:
        raise fail(name, f"{found} is a broken symbolic link") from None
    if not stat.S_ISDIR(mode):
        kind = "regular file" if stat.S_ISREG(mode) else "file that is not a directory"
        raise fail(name, f"{path} cannot be a directory: {found} is a {kind}",
                   f"choose another {name} ({_WHERE[name]})")
    reason = _unwritable_reason(found)
    if reason:
        problem = reason if found == path else f"cannot create {path}: {reason}"
        raise fail(name, problem,
                   f"make it writable for this user or choose another {name} ({_WHERE[name]})")


def check_socket(path: Path) -> None:
    size = len(os.fsencode(str(path)))
    if size > SUN_PATH_MAX:
        raise fail("socket", f"{path} is {size} bytes long, a Unix socket path can have at "
                   f"most {SUN_PATH_MAX}", f"choose a shorter path ({_WHERE['socket']})")
    check_directory("socket", path.parent)
    if path.is_dir():
        raise fail("socket", f"{path} is a directory",
                   f"name the socket file itself, e.g. {path / 'batchd.sock'}")


def check_aws(settings: Settings, env: Mapping[str, str]) -> None:
    """The profile exists and the region is set and region-shaped, from the local AWS config
    only (botocore reads ~/.aws/config and ~/.aws/credentials; no call is made)."""
    import botocore.session
    from botocore import exceptions as bexc

    profile = settings.aws_profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE")
    source = ("aws_profile" if settings.aws_profile else
              "environment variable AWS_PROFILE" if env.get("AWS_PROFILE") else
              "environment variable AWS_DEFAULT_PROFILE")
    session = botocore.session.Session(profile=profile) if profile else botocore.session.Session()
    files = (f"{session.get_config_variable('config_file')} or "
             f"{session.get_config_variable('credentials_file')}")
    try:
        session.get_scoped_config()
        region = session.get_config_variable("region")
    except bexc.ProfileNotFound:
        raise InvalidInput(f"{source}: AWS profile {profile!r} is not in {files}; add it "
                           f"(`aws configure --profile {profile}`) or set "
                           f"{_WHERE['aws_profile']} to an existing one") from None
    except bexc.ConfigParseError as exc:
        raise InvalidInput(f"aws_profile: the AWS config cannot be read ({exc}); fix the "
                           "file or point AWS_CONFIG_FILE at a valid one") from None
    if settings.aws_region:
        region, where = settings.aws_region, "aws_region"
    elif env.get("AWS_REGION"):
        region, where = env["AWS_REGION"], "environment variable AWS_REGION"
    elif env.get("AWS_DEFAULT_REGION"):
        where = "environment variable AWS_DEFAULT_REGION"
    else:
        where = f"region of AWS profile {profile or 'default'!r} in {files}"
    if not region:
        raise InvalidInput("aws_region: no AWS region configured on the aws backend; set "
                           f"{_WHERE['aws_region']}, AWS_REGION, AWS_DEFAULT_REGION or a "
                           "region in the AWS profile")
    if not is_region(region):
        raise InvalidInput(f"{where}: {region!r} is not an AWS region name; use one such as "
                           "us-east-1 or eu-west-2")


def check(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    check_socket(settings.socket)
    check_directory("state_dir", settings.state_dir)
    if settings.backend == "aws":
        check_aws(settings, env)


class Undo:
    """What this start created, to remove if it fails before the daemon is ready.

    A directory counts as created only if this process's own mkdir made it; state directory
    entries that were there before (a database, local jobs) are never touched, and a database
    that existed keeps its WAL and SHM files. Nothing in the state directory is removed unless
    this start held its lock, and nothing around a socket another daemon answers on: a daemon
    racing this one may be using them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.created: list[Path] = []
        self.locked = False           # set once the state directory's lock is ours
        self.contested = False        # set when another daemon answers on the socket
        try:
            self.state_entries: set[str] | None = set(os.listdir(settings.state_dir))
        except OSError:               # missing (then ours if made), or not listable: keep all
            self.state_entries = None
        self.database_existed = os.path.lexists(settings.database)

    def mkdir(self, path: Path, mode: int) -> None:
        """Path.mkdir(parents=True, exist_ok=True), remembering the levels it made."""
        missing = []
        probe = path
        while not os.path.lexists(probe) and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory, mode if directory == path else 0o777)
            except FileExistsError:
                continue              # made by someone else meanwhile: not ours to remove
            self.created.append(directory)
        if not path.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(path))

    def _may_remove(self, directory: Path) -> bool:
        def holds(target: Path) -> bool:
            return target == directory or directory in target.parents
        if holds(self.settings.state_dir) and not self.locked:
            return False
        return not (holds(self.settings.socket) and self.contested)

    def run(self) -> None:
        for directory in self.created:
            if any(parent in self.created for parent in directory.parents):
                continue              # removed with its outermost new parent
            if self._may_remove(directory):
                shutil.rmtree(directory, ignore_errors=True)
        state = self.settings.state_dir
        if (not self.locked or self.state_entries is None or state in self.created
                or not state.is_dir()):
            return
        database = self.settings.database.name
        for entry in set(os.listdir(state)) - self.state_entries:
            if self.database_existed and entry.startswith(database):
                continue
            target = state / entry
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
