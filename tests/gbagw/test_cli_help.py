"""`gbagw <any command> --help` describes the command and every option (issue 24 item 5)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

from gbagw.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, f"{path} {name}")


def test_every_command_and_option_is_described() -> None:
    missing: list[str] = []
    commands = list(_commands(build_parser(), "gbagw"))
    assert len(commands) > 25  # the walk reached the subcommands
    for path, parser in commands:
        if not (parser.description or "").strip():
            missing.append(f"{path}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                described = {a.dest: a.help for a in action._choices_actions}
                missing += [f"{path} {name}: no one-line help" for name in action.choices if not described.get(name)]
            elif not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}: no help")
            elif any(bad in action.help for bad in ("DESIGN.md", "../shared", "config/gbagw.toml")):
                missing.append(f"{path} {action.dest}: help points outside the installed package or docs/")
    assert not missing, "\n".join(missing)


def test_config_help_names_the_embedded_defaults_as_installed() -> None:
    helps = [a.help for _, p in _commands(build_parser(), "gbagw") for a in p._actions if a.dest == "config"]
    assert len(helps) > 10
    assert all(h is not None and "gbagw/defaults.toml inside the installed package" in h for h in helps)


def test_up_help_says_what_up_does() -> None:
    r = subprocess.run([sys.executable, "-m", "gbagw.cli", "up", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert "HSS stub + BSF + demo NAF + MEF in one process" in r.stdout
    assert "GBAGW_DATA_DIR" in r.stdout and "--data-dir DIR" in r.stdout
