"""``faoyam --help`` speaks to the person running it: every command and every option or
argument has a help text in plain words, and none of them is a bare requirement ID."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from faoyam.cli import app

# The shapes of shared/spec/REQUIREMENTS.md's IDs (B1a, R3, CH2, RET5, SEC1, …).
REQUIREMENT_ID = re.compile(r"\b(?:A|B|C|D|E|F|R|CH|CHG|CK|CT|RET|SEC|SH|TP|XB)\d+[ab]?\b")


def _commands(group, path=("faoyam",)):
    """(command path, click command) for every command under ``group``, nested groups too."""
    for name, cmd in sorted(group.commands.items()):
        here = (*path, name)
        if hasattr(cmd, "commands"):
            yield here, cmd
            yield from _commands(cmd, here)
        else:
            yield here, cmd


def _problems() -> list[str]:
    root = typer.main.get_command(app)
    found = []
    for path, cmd in _commands(root):
        where = " ".join(path)
        texts = {"help": cmd.help or ""}
        for p in cmd.params:
            if getattr(p, "hidden", False) or p.name == "help":
                continue
            texts[p.opts[0] if p.opts else p.name] = getattr(p, "help", None) or ""
        for what, text in texts.items():
            words = REQUIREMENT_ID.sub("", text)
            if not re.search(r"[A-Za-z]{3}", words):
                found.append(f"{where} {what}: no help in words ({text!r})")
            elif REQUIREMENT_ID.search(text):
                found.append(f"{where} {what}: requirement IDs in the help ({text!r})")
    return found


def test_every_command_option_and_argument_has_help_in_plain_words():
    assert _problems() == []


def test_the_walk_finds_a_missing_help_and_a_bare_id():
    """The check itself can fail: a command with an undocumented option and an ID-only help."""
    extra = typer.Typer()

    @extra.command("bad")
    def bad(flag: bool = typer.Option(False), level: int = typer.Option(1, help="(R3, CH2)")):
        """Erase things (R3)."""

    app.add_typer(extra, name="zz-test")
    try:
        problems = _problems()
    finally:
        app.registered_groups.pop()
    assert "faoyam zz-test bad --flag: no help in words ('')" in problems
    assert "faoyam zz-test bad --level: no help in words ('(R3, CH2)')" in problems
    assert "faoyam zz-test bad help: requirement IDs in the help ('Erase things (R3).')" in problems


def test_help_pages_render():
    for argv in (["--help"], ["outbox", "--help"], ["privacy", "erase", "--help"], ["devices", "simulate", "--help"]):
        r = CliRunner().invoke(app, argv)
        assert r.exit_code == 0, r.output
        assert "--data-dir" in r.output or argv == ["--help"]
