"""`vb2po --help` explains every option of every command and shows examples; `--version` answers."""
from __future__ import annotations

import argparse
from importlib.metadata import version

import pytest

from vb2po.cli import build_parser, main


def commands(parser: argparse.ArgumentParser, path: str = "vb2po"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if name != "sandbox":  # its own parser (`vb2po sandbox --help`)
                    yield from commands(sub, f"{path} {name}")


def test_every_option_of_every_command_says_what_it_does():
    for path, parser in commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"`{path}`: {'/'.join(action.option_strings) or action.dest} has no help"


def test_every_command_shows_examples_of_itself():
    for path, parser in commands(build_parser()):
        assert parser.epilog and parser.epilog.startswith("examples:"), f"`{path} --help` shows no examples"
        words = path.split()[1:]
        assert any(all(w in line.split() for w in words) for line in parser.epilog.splitlines()[1:]), \
            f"`{path}`'s examples do not use it"


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"vb2po {version('vb2po')}"
