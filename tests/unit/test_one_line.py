"""library.errors.one_line: the one helper that puts a message on one line."""

from __future__ import annotations

from library.errors import UserError, one_line


def test_whitespace_collapses_and_control_characters_show():
    assert one_line("a\n  b\tc\r\n") == "a b c"
    assert one_line("bell\x07 nul\x00 esc\x1b[31mred") == "bell\\x07 nul\\x00 esc\\x1b[31mred"


def test_exceptions_name_their_class_unless_they_are_user_errors():
    assert one_line(KeyError("x")) == "KeyError: 'x'"
    assert one_line(RuntimeError()) == "RuntimeError"
    assert one_line(UserError("flocks.yaml: bad\nthing")) == "flocks.yaml: bad thing"
    assert one_line(KeyboardInterrupt()) == "interrupted"


def test_limit_cuts_with_an_ellipsis():
    assert one_line("x" * 10, 5) == "xxxx…"
    assert one_line("short", 5) == "short"


def test_the_former_helpers_are_this_one():
    from library import toolbox
    from library.events import short_error
    from library.jupyter.errors import JupyterError
    from library.tap import errors as tap_errors

    assert tap_errors.one_line is one_line
    assert not hasattr(toolbox, "_one_line")
    assert JupyterError("a\n\x1bb").one_line() == "a \\x1bb"
    assert short_error(ValueError("v\x00\n" + "y" * 500)).startswith("v\\x00 yyy")
    assert len(short_error("z" * 500)) == 200
