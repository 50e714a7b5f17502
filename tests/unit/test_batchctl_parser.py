"""batchctl builds only the named command's parser (start-up time); it must parse exactly
as the full parser does."""

from __future__ import annotations

import pytest

from batchctl.cli import build_parser, command_word


@pytest.mark.parametrize("argv, word", [
    (["status", "p/w"], "status"),
    (["--socket", "/s", "status", "p/w"], "status"),
    (["--socket=/s", "--debug", "dashboard"], "dashboard"),
    (["--request-timeout", "5", "daemon", "status"], "daemon"),
    (["--", "status"], "status"),
    (["--sock", "status", "dashboard"], "dashboard"),     # argparse's prefix of --socket
    (["-h", "status"], None),                              # top-level help: every command
    (["--help"], None),
    ([], None),
])
def test_command_word_skips_global_options(argv, word):
    assert command_word(argv) == word


@pytest.mark.parametrize("argv", [
    ["status", "p/w", "--jobs", "--state", "FAILED", "--socket", "/s"],
    ["--socket", "/s", "submit", "p/w"],
    ["daemon", "status"],
    ["logs", "p/w", "--sample", "s1"],
    ["resubmit", "p/w", "--status", "FAILED", "--memory", "4096"],
])
def test_partial_parser_parses_like_the_full_one(argv):
    full = vars(build_parser().parse_args(argv))
    partial = vars(build_parser(only=command_word(argv)).parse_args(argv))
    assert {k: v for k, v in partial.items() if k != "func"} == \
        {k: v for k, v in full.items() if k != "func"}
    assert partial["func"] is full["func"]


def test_unknown_words_get_the_full_parser_and_its_choices(capsys):
    with pytest.raises(SystemExit):
        build_parser(only="stauts").parse_args(["stauts"])
    assert "choose from 'import', 'create', 'submit', 'status'" in capsys.readouterr().err
