"""batchctl's command registry: which module defines each command word, and what a command is.

A command is a function in one of `batchctl/commands/*.py`, registered with `@command`:

    @command("cancel", help="cancel a workflow's jobs",
             description="...", example="batchctl cancel myproj/famli",
             args=[arg("target", metavar="PROJECT/WORKFLOW")])
    def cmd_cancel(ctx: Context, args) -> int:
        ctx.client.post(f"/v1/projects/.../cancel")
        return 0

A name with a space ("jobdef register") makes a sub-command of a group; describe the group
once in `GROUPS`. Add the first word of every new command to `MODULES`: the table is static so
that `batchctl status` imports only the module that defines `status` (start-up time), and
tests/unit/test_batchctl_layout.py fails if a module registers words the table does not give
it. Command modules import this module, `client`, `util`, `render` and batchshared; never
`cli` and never each other, so the import graph has no cycle.
"""

from __future__ import annotations

import sys

from batchctl.client import DEFAULT_TIMEOUT, Client, resolve_socket_path

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    import argparse
    from collections.abc import Callable
    from typing import Any, TextIO

# First word of a command -> its module in batchctl/commands/. The order is the order of the
# commands in `batchctl --help`.
MODULES: dict[str, str] = {
    "import": "workflows", "create": "workflows", "submit": "workflows",
    "status": "workflows", "dashboard": "workflows",
    "jobdef": "jobdef",
    "ping": "info", "version": "info",
    "daemon": "daemon",
    "cancel": "jobs", "resubmit": "jobs", "logs": "jobs", "history": "jobs", "queues": "jobs",
}

# Help for command groups ("jobdef register" -> group "jobdef").
GROUPS: dict[str, tuple[str, str]] = {
    "jobdef": ("register and list job definitions",
               "Job definitions describe the container each workflow step runs (the AWS Batch "
               "RegisterJobDefinition format)."),
    "daemon": ("control the batchd daemon itself", "Control the batchd daemon process."),
}


def load(word: str | None = None) -> None:
    """Import the module that registers `word`; every command module if `word` is None or not
    a command (the full help and argparse's "invalid choice" list need them all)."""
    names = [MODULES[word]] if word in MODULES else list(dict.fromkeys(MODULES.values()))
    for name in names:
        # __import__, not importlib.import_module: importing importlib costs ~0.5 ms
        __import__(f"batchctl.commands.{name}")


class Command:
    """One registered sub-command (a plain class: dataclasses would cost ~9 ms at start-up)."""

    __slots__ = ("name", "func", "help", "description", "example", "args")

    def __init__(self, name: str, func: Callable[[Context, argparse.Namespace], int],
                 help: str, description: str, example: str,
                 args: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
        self.name, self.func, self.help = name, func, help
        self.description, self.example, self.args = description, example, args

    @property
    def head(self) -> str:
        """The first word: the command, or the group of a sub-command."""
        return self.name.partition(" ")[0]


COMMANDS: list[Command] = []


def arg(*names: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """An `add_argument` call for `command(args=[...])`."""
    return names, kwargs


def command(name: str, *, help: str, description: str, example: str,
            args: list[tuple[tuple[Any, ...], dict[str, Any]]] | None = None
            ) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register a sub-command; `example` is shown under "example:" in its --help."""

    def register(func: Callable[..., int]) -> Callable[..., int]:
        COMMANDS.append(Command(name, func, help, description, example, list(args or [])))
        return func

    return register


def ordered(commands: list[Command]) -> list[Command]:
    """`commands` in the order of `MODULES` (then as registered), whatever order the modules
    were imported in."""
    rank = {word: i for i, word in enumerate(MODULES)}
    return sorted(commands, key=lambda cmd: rank.get(cmd.head, len(rank)))


class Context:
    """What a command needs: the client (created on first use), output streams, flags."""

    def __init__(self, args: argparse.Namespace, out: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self.args = args
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.socket_path = resolve_socket_path(getattr(args, "socket", None))
        self.timeout = getattr(args, "timeout", DEFAULT_TIMEOUT)
        self.debug = bool(getattr(args, "debug", False))
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.socket_path, timeout=self.timeout)
        return self._client

    def print(self, *parts: Any) -> None:
        print(*parts, file=self.out)

    def note(self, *parts: Any) -> None:
        """A message for the human, on stderr (keeps stdout clean for pipes)."""
        print(*parts, file=self.err)
