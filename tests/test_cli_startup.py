"""What a command's start-up imports (issue 15, the CLI latency target): a call that names a
command registers only that command, so ``fit`` does not import the design package (``loop``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bayes_scaling.cli import build_parser, main

CHECK = """
import json, sys
from bayes_scaling.cli import build_parser
parser = build_parser({command!r})
commands = sorted(next(a for a in parser._actions if a.dest == "command").choices)
print(json.dumps({{"commands": commands, "design_loaded": "bayes_scaling.design.loop" in sys.modules}}))
"""


def _startup(command):
    out = subprocess.run([sys.executable, "-c", CHECK.format(command=command)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh interpreter, several processes or a whole CLI round trip: in `make test`
def test_a_named_command_imports_only_its_own_module():
    fit = _startup("fit")
    assert fit == {"commands": ["fit"], "design_loaded": False}
    every = _startup(None)  # --help, or no command: all of them
    assert {"fit", "loop", "plan", "predict", "report", "backtest"} <= set(every["commands"])
    assert every["design_loaded"]


def test_an_unknown_command_still_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fitt", "chinchilla"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'fitt'" in err and "'loop'" in err and "'fit'" in err


def test_the_named_commands_parser_is_the_full_one():
    args = build_parser("fit").parse_args(["fit", "chinchilla", "--out", "x", "--model", "plain"])
    assert (args.command, args.runs, args.model, args.func.__module__) == ("fit", "chinchilla", "plain",
                                                                          "bayes_scaling.cli.fit")


@pytest.mark.slow  # a fresh interpreter
def test_the_fitting_code_leaves_arviz_unimported_until_it_is_used():
    """ArviZ (about 1 s per CLI call) loads where a fit summarises with it, not with the fitting modules, and
    not where the default's refits weigh their draws (``fitting.pareto`` smooths the weights itself)."""
    code = ("import json, sys; import bayes_scaling.fitting.nuts, bayes_scaling.extrapolation, bayes_scaling.backtest; "
            "print(json.dumps(sorted(m for m in ('arviz', 'arviz_stats') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
