"""`trm eval figures`: every table and figure regenerates from result files and from the paper's numbers."""

from __future__ import annotations

import json
from pathlib import Path

from trm.evaluation.benchmarks import load_items
from trm.evaluation.benchmarks_cli import main as eval_main
from trm.evaluation.bon import best_of_n
from trm.evaluation.figures import main as figures_main
from trm.evaluation.grading import grade_records
from trm.evaluation.selectors import MajorityVote, Oracle, RandomSelector
from trm.evaluation.toy import synthetic_records
from trm.evaluation.winrate import summarise

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "benchmarks"
PNG = b"\x89PNG\r\n\x1a\n"


def test_figures_from_results_and_paper(tmp_path):
    results = tmp_path / "results"
    records = grade_records(synthetic_records(load_items("aime24", data_dir=str(FIXTURES)), n=8, seed=1))
    bon = best_of_n(records, {"majority": MajorityVote(), "random": RandomSelector(), "oracle": Oracle()},
                    (1, 2, 4, 8), repeats=2)
    bon["title"] = "toy best-of-N"
    (results / "bon" / "aime24").mkdir(parents=True)
    (results / "bon" / "aime24" / "bon.json").write_text(json.dumps(bon))
    gen = tmp_path / "gen.jsonl"
    gen.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert eval_main(["--run", f"toy-policy/TRM={gen}", "--out-dir", str(results / "eval"), "--ks", "1", "8"]) == 0
    for name, (w, l) in {"vs_base": (8, 2), "vs_verifier": (6, 4)}.items():
        outcomes = [{"label": 1, "benchmark": "b"}] * w + [{"label": 2, "benchmark": "b"}] * l
        summary = summarise(outcomes, "TRM", name.split("_")[1])
        summary["group"] = "toy-policy"
        (results / "winrate" / name).mkdir(parents=True)
        (results / "winrate" / name / "winrate.json").write_text(json.dumps(summary))

    out = tmp_path / "assets"
    assert figures_main(["--results", str(results), "--out", str(out)]) == 0
    expected = ["paper_table2.md", "paper_table2.csv", "paper_table2.png", "paper_bon.png", "paper_winrate.png",
                "bon_results_aime24.md", "bon_results_aime24.png", "table2_results.md", "table2_results.csv",
                "table2_results.png", "winrate_results.md", "winrate_results.png"]
    for name in expected:
        assert (out / name).exists(), name
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == PNG and (out / name).stat().st_size > 5000
    paper_md = (out / "paper_table2.md").read_text()
    assert paper_md.count("| TRM |") == 3 and "| 31.1 | 63.4 | 19.1 | 17.1 | 83.0 | 47.4 | 46.0 |" in paper_md
    bon_md = (out / "bon_results_aime24.md").read_text()
    assert "### toy best-of-N" in bon_md and "| majority |" in bon_md and "| N=8 |" in bon_md
    assert "| toy-policy | TRM |" in (out / "table2_results.md").read_text()
    winrate_md = (out / "winrate_results.md").read_text()
    assert "| TRM | base | 0.800 |" in winrate_md and "| TRM | verifier | 0.600 |" in winrate_md

    # Paper-only mode writes just the paper figures; rerunning overwrites in place.
    only = tmp_path / "paper_only"
    assert figures_main(["--out", str(only)]) == 0
    assert sorted(p.name for p in only.iterdir()) == sorted(expected[:5])
