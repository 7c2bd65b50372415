"""What one question gets through different commands (the thirty-third session's consistency review):
`decide` names the law's loss at a budget apart from a run's, says when the budget for a target is a
median over the draws that reach it, marks that budget as `frontier` marks it, carries the frontier's
warning about runs that beat it, and refuses a second --target-loss rather than keeping the last."""

import json

import pytest

from test_audit_fixes import epoch_posterior, isoflop_runs

from bayes_scaling.cli import main
from bayes_scaling.runs.table import load_runs


def test_decide_says_what_each_probability_and_median_is(tmp_path, capsys):
    runs = load_runs(isoflop_runs(0.9).frame)  # runs 10% below the law
    fit = epoch_posterior(runs, wild=8).save(tmp_path / "fit")  # 8 of 400 draws cannot reach a low target
    capsys.readouterr()
    assert main(["decide", str(fit), "--budget", "1e21", "--target-loss", "1.9"]) == 0
    out = capsys.readouterr().out
    assert "losses at a budget are the law's (no run-to-run noise)" in out and "P(law's loss <= 1.9)" in out
    assert "reached a lower loss than its frontier allows" in out  # as frontier and the report warn
    assert main(["decide", str(fit), "--target-loss", "1.9", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert any("reached a lower loss than its frontier allows" in n for n in doc["notes"])
    t = doc["target"]
    from bayes_scaling.cli.decide import text

    assert t["p_reachable"]["p"] == 1 and "draws that reach it" not in text(doc)
    t["p_reachable"]["p"] = 0.928  # a target some draws cannot reach: the median budget is over the others
    assert "training FLOPs needed (over the 92.8% of draws that reach it)" in text(doc)
    assert main(["frontier", str(fit), "--budget", str(t["lifetime_flops"]["median"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frontier"][0]["range"] == t["range"]  # marked by its compute
    with pytest.raises(SystemExit) as stopped:  # argparse's exit: usage and the error on stderr, status 2
        main(["decide", str(fit), "--target-loss", "2.0", "--target-loss", "1.95"])
    assert stopped.value.code == 2
    assert "--target-loss given twice (2 and 1.95); one per call" in capsys.readouterr().err
