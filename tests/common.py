"""Small named inputs and helpers shared by the tests."""

from __future__ import annotations


def run_cli(argv, capsys):
    """Run ``qa`` in-process; return (exit code, stdout, stderr)."""
    from qa.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
