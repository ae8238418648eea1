"""bench/load_protocol.py as a smoke test: two visitors walk the tour on the real app and on the one-line
app, every action finishes without an error, and each is counted. No timing is asserted."""

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import load_protocol  # noqa: E402

pytestmark = pytest.mark.slow  # starts two Streamlit servers


def test_two_protocol_visitors_walk_the_tour_without_errors(capsys):
    results = load_protocol.main(["--n", "2", "--think", "0.2", "--timeout", "120"])
    app, base = results["runs"]
    assert (app["server"], base["server"]) == ("app", "one-line app")
    assert app["actions"] == app["ok"] == 2 * len(load_protocol.TOUR), app["error_examples"]
    assert base["actions"] == base["ok"] == 2 * len(load_protocol.BASELINE_TOUR), base["error_examples"]
    assert set(app["per_step_p95_ms"]) == {s.name for s in load_protocol.TOUR}  # every step ran
    assert app["peak_rss_mib"] > base["peak_rss_mib"] > 0 and app["cpu_cores"] > 0
    printed = capsys.readouterr().out
    assert "| app | 2 | 24/24 | 0 |" in printed and "warm-up walk, not counted" in printed and "the app's p95 is" in printed
