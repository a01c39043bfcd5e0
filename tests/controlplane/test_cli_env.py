"""`airdock env dags` shows the line of an error that says what went wrong."""

from __future__ import annotations

from controlplane.cli_env import error_summary


def test_a_traceback_is_shown_by_its_last_line():
    error = (
        "Traceback (most recent call last):\n"
        '  File "dags/broken.py", line 2, in <module>\n'
        "    import nope\n"
        "ModuleNotFoundError: No module named 'nope'\n\n"
    )
    assert error_summary(error) == "ModuleNotFoundError: No module named 'nope'"
    assert error_summary("SyntaxError: invalid syntax") == "SyntaxError: invalid syntax"
    assert error_summary("  \n") == "-"
