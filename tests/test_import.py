"""The import backend: published MLPerf logs become runs of a system, scored and compared like
runs made here; NVIDIA's two v0.6 GNMT systems in one report, opened in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from scripts.campaign import comparability, config_checks, topology
from scripts.core import config as cfg
from scripts.core.layout import result_files
from scripts.mlperf.log_parser import parse_file
from scripts.mlperf.outcome import run_outcome
from scripts.run.published.run import import_run, source_of
from scripts.run.result_json import write_result
from tests.conftest import REPO, copy_workflow, jobs_run, need_fixtures, snakemake, snapshot

V06 = "mlperf-v0.6-nvidia"
DGX1_SCORE_S = 1233.20325  # NVIDIA's published v0.6 GNMT result on DGX-1: 20.55 minutes
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", REPO / "test-artifacts"))


def olympic(times: list[float]) -> float:
    """Independent of scripts.analysis.scoring: sort, drop first and last, average."""
    s = sorted(times)
    return sum(s[1:-1]) / (len(s) - 2)


def published_times(folder: Path) -> list[float]:
    """Times to train straight from the logs (run_stop - run_start)."""
    out = []
    for f in result_files(folder):
        o = run_outcome(parse_file(f), 24.0)
        assert o.converged and o.time_to_train_s is not None
        out.append(o.time_to_train_s)
    return out


def nvidia_overlay(wf: Path, fixtures: Path, reference: str = "nvidia-dgx1-v0.6") -> Path:
    """The repository's example systems, pointed at the fixtures instead of a clone."""
    overlay = {
        "campaign": {"benchmarks": ["gnmt-v0.6"], "reference_system": reference},
        "systems": {
            "nvidia-dgx1-v0.6": {"import_dir": str(fixtures / V06 / "dgx1_ngc19.05_pytorch")},
            "nvidia-dgx2-v0.6": {"import_dir": str(fixtures / V06 / "dgx2_ngc19.05_pytorch")},
        },
    }
    path = wf / "nvidia-fixtures.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


NVIDIA_SYSTEMS = ("config/systems/nvidia-dgx1-v0.6.yaml", "config/systems/nvidia-dgx2-v0.6.yaml")


# ---------------------------------------------------------------------------------------------
# unit tests


def test_result_files_are_every_result_txt_ordered_by_their_numbers(tmp_path: Path) -> None:
    # the summarizer scores every result_*.txt (glob); the numbers in a name order them
    for n in (10, 2, 0, 1):
        (tmp_path / f"result_{n}.txt").write_text("")
    (tmp_path / "result_x.txt").write_text("")
    (tmp_path / "result_.txt").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "result_0.log").write_text("")
    (tmp_path / "result_9.txt").mkdir()  # a folder is not a log
    assert [p.name for p in result_files(tmp_path)] == [
        "result_0.txt",
        "result_1.txt",
        "result_2.txt",
        "result_10.txt",
        "result_.txt",
        "result_x.txt",
    ]
    assert source_of(tmp_path, 4).name == "result_10.txt"
    with pytest.raises(FileNotFoundError, match="has 6 result"):
        source_of(tmp_path, 7)


def test_result_files_with_datestamps_order_by_their_run_number(tmp_path: Path) -> None:
    # Lambda's v4.1 names (result_<datestamp>_NN.txt) and Intel's v0.7 ones
    for n in (10, 2, 1, 9):
        (tmp_path / f"result_240929051841195134739_{n:02d}.txt").write_text("")
    (tmp_path / "result_03.txt").write_text("")
    (tmp_path / "result_3.txt").write_text("")
    names = [p.name for p in result_files(tmp_path)]
    assert names == [
        "result_03.txt",  # the same number: by name, so the order never depends on the disk
        "result_3.txt",
        "result_240929051841195134739_01.txt",
        "result_240929051841195134739_02.txt",
        "result_240929051841195134739_09.txt",
        "result_240929051841195134739_10.txt",
    ]
    assert result_files(tmp_path / "missing") == []


SPEC = {
    "benchmark": "transformer-v0.6",
    "system": "dgx1",
    "run": 1,
    "scale": "MLPerf",
    "mlperf_name": "transformer",
    "config_fingerprint": "cfp",
    "comparability": {"x": 1},
}


def test_an_imported_run_records_its_source_and_the_submission(tmp_path: Path) -> None:
    source = REPO / "tests" / "data" / "v06" / "dgx1_pytorch_transformer_result_0.txt"
    log, meta_path = tmp_path / "run_01" / "mlperf.log", tmp_path / "run_01" / "run.json"
    meta = import_run(source, SPEC, log, meta_path)
    assert log.read_bytes() == source.read_bytes()
    assert json.loads(meta_path.read_text()) == meta.to_json()
    assert meta.seed == 16374  # from the RESULT line
    assert meta.source == str(source.resolve()) and len(meta.source_sha256 or "") == 64
    assert meta.submission == {"benchmark": "transformer"}
    assert meta.started_utc == "2019-06-25T01:35:52.510000+00:00"
    assert meta.backend == "import" and meta.wall_s is None


def test_a_log_of_another_benchmark_is_a_run_without_a_result(tmp_path: Path) -> None:
    source = REPO / "tests" / "data" / "v06" / "dgx1_pytorch_ssd_result_0.txt"
    meta = import_run(source, SPEC, tmp_path / "l", tmp_path / "m")
    [why] = meta.import_problems or []
    assert re.search(r"submission_benchmark is 'ssd'.*another benchmark.*check import_dir", why)
    quality = {"metric": "bleu", "target": 24.0}
    result = write_result(tmp_path / "l", tmp_path / "m", quality, "run_stop", tmp_path / "r")
    assert not result.converged and (result.log_problems or [])[0] == why


def test_a_folder_alias_is_the_benchmark_of_its_logs(tmp_path: Path) -> None:
    # Google's v0.6 mask folders log submission_benchmark "mask" (the summarizer's alias)
    source = REPO / "tests" / "data" / "v06" / "dgx1_pytorch_ssd_result_0.txt"
    spec = {**SPEC, "mlperf_name": "maskrcnn", "folder_aliases": ["ssd"]}
    meta = import_run(source, spec, tmp_path / "l", tmp_path / "m")
    assert meta.import_problems == []


def test_import_systems_are_validated_with_the_key_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"systems": {"pub": {"backend": "import"}}}))
    with pytest.raises(cfg.ConfigError, match=r"bad.yaml: systems.pub: 'import_dir' is a"):
        config_checks.load_campaign([bad])
    bad.write_text(
        yaml.safe_dump({"systems": {"pub": {"backend": "import", "import_dir": "/nowhere"}}})
    )
    with pytest.raises(cfg.ConfigError, match=r"bad.yaml: systems.pub.import_dir: folder /nowh"):
        config_checks.load_campaign([bad])
    (tmp_path / "empty").mkdir()
    bad.write_text(
        yaml.safe_dump(
            {"systems": {"pub": {"backend": "import", "import_dir": str(tmp_path / "empty")}}}
        )
    )
    with pytest.raises(cfg.ConfigError, match=r"holds no results of a defined benchmark"):
        config_checks.load_campaign([bad])


def test_each_system_has_runs_only_of_the_benchmarks_it_can_produce(tmp_path: Path) -> None:
    fixtures = need_fixtures()
    overlays = [REPO / f for f in NVIDIA_SYSTEMS] + [nvidia_overlay(tmp_path, fixtures)]
    config = config_checks.load_campaign(overlays)
    assert topology.benchmark_systems(config, "gnmt-v0.6") == [
        "nvidia-dgx1-v0.6",
        "nvidia-dgx2-v0.6",
    ]
    assert topology.benchmark_systems(config, "gnmt") == ["local"]  # the toy has no mlperf_name
    assert topology.benchmark_systems(config, "ssd-v0.6") == []  # no ssd folder in the fixtures
    assert topology.system_run_ids(config, "gnmt-v0.6", "nvidia-dgx1-v0.6") == [
        f"{i:02d}" for i in range(1, 11)
    ]
    record = comparability.comparability(config, "gnmt-v0.6", "nvidia-dgx1-v0.6")
    assert record["system"]["import_dir"].endswith("dgx1_ngc19.05_pytorch")
    assert record["command"] is None and record["dataset"] == []


def test_a_campaign_benchmark_nobody_can_run_is_an_error(tmp_path: Path) -> None:
    overlay = tmp_path / "c.yaml"
    overlay.write_text(yaml.safe_dump({"campaign": {"benchmarks": ["ssd-v0.6"]}}))
    with pytest.raises(cfg.ConfigError, match="no system of the campaign can run or import"):
        config_checks.load_campaign([overlay])


# ---------------------------------------------------------------------------------------------
# the published DGX-1 and DGX-2 GNMT results, end to end


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The example overlays plus the fixtures' folders: one snakemake run of the default target."""
    fixtures = need_fixtures()
    wf = copy_workflow(tmp_path_factory.mktemp("import") / "wf")
    overlay = nvidia_overlay(wf, fixtures)
    args = ["--cores", "1", "--configfile", *NVIDIA_SYSTEMS, str(overlay)]
    first = snakemake(wf, *args)
    assert first.returncode == 0, first.stderr[-4000:]
    return {"wf": wf, "args": args, "fixtures": fixtures, "stderr": first.stderr}


@pytest.mark.workflow
def test_published_systems_are_imported_scored_as_published_and_compared(
    imported: dict,
) -> None:
    wf, fixtures = imported["wf"], imported["fixtures"]
    jobs = jobs_run(imported["stderr"])
    # one job imports the 20 runs of both systems (rules/import.smk)
    assert [j for j in jobs if j.startswith("import_")] == ["import_gnmt_v0_6"]
    batch_log = (wf / "logs" / "import" / "gnmt-v0.6" / "import_gnmt_v0_6.log").read_text()
    assert "[20/20] results/gnmt-v0.6/nvidia-dgx2-v0.6/run_10: converged" in batch_log
    assert not any(j.startswith(("train_run", "capture_environment", "download")) for j in jobs)
    res = wf / "results" / "gnmt-v0.6"
    summary = pd.read_csv(res / "summary.csv").set_index("system")
    dgx1 = published_times(fixtures / V06 / "dgx1_ngc19.05_pytorch" / "gnmt")
    dgx2 = published_times(fixtures / V06 / "dgx2_ngc19.05_pytorch" / "gnmt")
    assert summary.loc["nvidia-dgx1-v0.6", "score_s"] == pytest.approx(DGX1_SCORE_S, abs=1e-6)
    assert summary.loc["nvidia-dgx1-v0.6", "score_s"] == pytest.approx(olympic(dgx1), abs=1e-6)
    assert summary.loc["nvidia-dgx2-v0.6", "score_s"] == pytest.approx(olympic(dgx2), abs=1e-6)
    assert summary["n_runs"].tolist() == [10, 10] and summary["valid"].all()
    assert summary["benchmark"].tolist() == ["gnmt-v0.6", "gnmt-v0.6"]

    comparison = pd.read_csv(res / "comparison.csv")
    assert len(comparison) == 1
    row = comparison.iloc[0]
    assert row["system"] == "nvidia-dgx2-v0.6" and row["reference"] == "nvidia-dgx1-v0.6"
    assert row["speedup"] == pytest.approx(
        (sum(dgx1) / len(dgx1)) / (sum(dgx2) / len(dgx2)), rel=1e-9
    )
    assert 1 < row["speedup_ci95_low"] < row["speedup"] < row["speedup_ci95_high"]
    assert bool(row["significant"]) and row["p_welch"] < 1e-6
    assert row["score_speedup"] == pytest.approx(DGX1_SCORE_S / olympic(dgx2), rel=1e-9)
    assert re.fullmatch(
        r"nvidia-dgx2-v0\.6 is 1\.\d\dx faster than nvidia-dgx1-v0\.6 \(95% CI 1\.\d\d-\d\.\d\d\)",
        row["verdict"],
    )

    runs = pd.read_csv(res / "runs.csv")
    first = runs[(runs["system"] == "nvidia-dgx1-v0.6") & (runs["run"] == 1)].iloc[0]
    assert first["time_to_train_s"] == 1225.22  # result_0.txt
    assert first["result_line_wall_s"] == 1247 and first["host"] == "sc-sdgx-629"
    meta = json.loads((res / "nvidia-dgx2-v0.6" / "run_01" / "run.json").read_text())
    assert meta["submission"]["platform"] == "1xNVIDIA DGX-2"
    assert meta["submission"]["entry"]["nodes"]["accelerator"] == "Tesla V100-SXM3-32GB"
    assert meta["source"].endswith("dgx2_ngc19.05_pytorch/gnmt/result_0.txt")

    page = (res / "report.html").read_text()
    assert page.index(row["verdict"]) < page.index("<h2>Warnings</h2>")  # the verdict first
    assert page.count('src="data:image/png;base64,') == 7  # the six plots and the leaderboard
    assert "http://" not in page and "https://" not in page  # self-contained
    for text in ("Tesla V100-SXM3-32GB", "sc-sdgx-629", meta["source_sha256"], "Provenance"):
        assert text in page
    for name in ("runs", "drift", "ecdf", "mean_ci", "speedup", "quality", "leaderboard"):
        assert (res / "plots" / f"{name}.png").stat().st_size > 5000

    again = snakemake(wf, *imported["args"])
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.workflow
def test_snakemake_report_collects_tables_plots_and_the_page(
    imported: dict, tmp_path: Path
) -> None:
    wf = imported["wf"]
    before = snapshot(wf)
    out = tmp_path / "snakemake-report.html"
    proc = snakemake(wf, *imported["args"], "--report", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("summary.csv", "comparison.csv", "report.html", "runs.png", "quality.png"):
        assert f"Adding {name}" in proc.stderr + proc.stdout
    text = out.read_text()
    assert "speedup is the ratio of mean times" in text  # a caption, from report/*.rst
    # a column's caption from the registry (scripts/analysis/columns.py), given to the template as
    # params.columns
    assert "standard error of the mean" in text
    assert snapshot(wf) == before  # making the report changes no result


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is missing; .ci/run installs Debian's chromium")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0);
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = `images ${loaded.length}/${images.length}`;
  document.body.appendChild(out);
});
</script></body>"""


@pytest.mark.services
@pytest.mark.workflow
def test_the_report_renders_in_a_real_browser_with_every_image(
    imported: dict, tmp_path: Path
) -> None:
    chromium = find_chromium()
    page = imported["wf"] / "results" / "gnmt-v0.6" / "report.html"
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    # every image decoded: checked by a script in a copy of the page, after the load event
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", IMAGE_CHECK))
    dom = subprocess.run(
        [*base, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<pre id="image-check">images 7/7</pre>' in dom.stdout
    assert "nvidia-dgx2-v0.6 is 1." in dom.stdout
    # the page itself, as a screenshot artifact
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-gnmt-v0.6.png"
    shot.unlink(missing_ok=True)
    proc = subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,6000", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png_size(shot) == (1200, 6000) and shot.stat().st_size > 100_000
