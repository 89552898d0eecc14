"""A smoke run of the benchmark (benchmarks/bench.py) with the tiny test models; the real run is not in CI."""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def test_benchmark_runs_both_sides_and_reports_one_json_object(tiny_tagger_dir, tiny_briefer_dir, tmp_path):
    articles = tmp_path / "articles.jsonl"
    articles.write_text("".join(json.dumps({"text": t}) + "\n" for t in [
        "Syrian forces shelled Idlib on Monday. About 120,000 people fled toward Turkey.",
        "Turkey hosts 3.5 million Syrian refugees. Talks in Moscow ended without agreement.",
        "Raed Saleh of the White Helmets said hospitals were hit."]))
    common = ["--file", str(articles), "--n", "3", "--tagger", str(tiny_tagger_dir), "--num-beams", "2",
              "--max-new-tokens", "8", "--batch-size", "2"]
    done = subprocess.run([sys.executable, str(BENCH), "--briefer", str(tiny_briefer_dir), *common],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["same_number_of_outputs"] and report["ours"]["outputs"] == report["baseline"]["outputs"] == 3
    for side in ("baseline", "ours"):
        assert report[side]["articles_per_s"] > 0 and report[side]["peak_rss_mib"] > 0
    assert report["ratio"] > 0 and report["settings"]["num_beams"] == 2
    # without a briefer (none is shipped) it says so in one line instead of a traceback
    done = subprocess.run([sys.executable, str(BENCH), "--briefer", str(tmp_path / "none"), *common],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "bench.py: the baseline side failed" in done.stderr
    assert "Traceback" not in done.stderr
