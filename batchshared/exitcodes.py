"""The exit codes of batchctl and of the batchd daemon: the one definition. batchctl's
`--help` (cli.py's epilog), its client's error mapping and every command, and batchd's
`--help` and `main`, take them from here; tests/unit/test_batchctl_layout.py checks that
README.md's two exit-code tables say the same."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_PERMISSION = 4
EXIT_NOT_FOUND = 5
EXIT_CONFLICT = 6
EXIT_BACKEND = 7
EXIT_UNAVAILABLE = 8
# Not in the table: the shell's conventions for "killed by SIGINT" and "SIGPIPE".
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

# (code, meaning): the documented contract, in the words `batchctl --help` shows.
MEANINGS = (
    (EXIT_OK, "ok"),
    (EXIT_ERROR, "unexpected error (or, with status --watch, the workflow FAILED / was "
                 "CANCELLED)"),
    (EXIT_USAGE, "usage error or invalid input (the message says what to fix)"),
    (EXIT_NOT_RUNNING, "batchd is not running (nothing answers on the socket)"),
    (EXIT_PERMISSION, "permission denied (socket not accessible, or action not allowed)"),
    (EXIT_NOT_FOUND, "not found (project, workflow, job definition)"),
    (EXIT_CONFLICT, "conflict (already exists, already running)"),
    (EXIT_BACKEND, "backend (AWS Batch) error"),
    (EXIT_UNAVAILABLE, "batchd unavailable (disk full, shutting down)"),
)

# The daemon's API error code -> exit code.
BY_API_CODE = {
    "invalid_input": EXIT_USAGE,
    "payload_too_large": EXIT_USAGE,
    "not_found": EXIT_NOT_FOUND,
    "conflict": EXIT_CONFLICT,
    "permission_denied": EXIT_PERMISSION,
    "backend_error": EXIT_BACKEND,
    "unavailable": EXIT_UNAVAILABLE,
}
# HTTP status -> exit code, for error answers without a JSON body (a proxy, aiohttp itself).
BY_HTTP_STATUS = {
    400: EXIT_USAGE, 403: EXIT_PERMISSION, 404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT,
    413: EXIT_USAGE, 502: EXIT_BACKEND, 503: EXIT_UNAVAILABLE,
}


def epilog() -> str:
    """The "exit codes:" section at the end of `batchctl --help`."""
    return "exit codes:\n" + "".join(f"  {code}  {text}\n" for code, text in MEANINGS)


# -- the daemon: what systemd (and a script starting batchd) sees ------------------------------
DAEMON_STOPPED = 0          # stopped cleanly
DAEMON_CRASHED = 1          # a loop crashed: the unit's Restart=on-failure restarts it
DAEMON_BAD_CONFIG = 2       # the unit's RestartPreventExitStatus: restarting would not help
DAEMON_ALREADY_RUNNING = 3

DAEMON_MEANINGS = (
    (DAEMON_STOPPED, "stopped cleanly (SIGTERM, SIGINT or `batchctl daemon stop`)"),
    (DAEMON_CRASHED, "a loop crashed or an unexpected error (systemd restarts it)"),
    (DAEMON_BAD_CONFIG, "bad configuration (one line on stderr names the setting and the fix)"),
    (DAEMON_ALREADY_RUNNING, "another batchd already owns the socket or the state directory"),
)


def daemon_epilog() -> str:
    """The "exit codes:" section at the end of `batchd --help`."""
    return "exit codes:\n" + "".join(f"  {code}  {text}\n" for code, text in DAEMON_MEANINGS)
