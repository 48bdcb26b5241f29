"""The run report against a synthetic run directory: its numbers are checked against means,
fractions and Jaccard indices computed here by hand from the rows the test wrote."""

from __future__ import annotations

import json
import math
import pathlib
import re
import shutil
import statistics
from typing import Any

import numpy as np
import pytest
from steerkit_runner.report import comparison_table, format_table, read_results, write_report

from steerkit.errors import SteerkitError

HASH = "cafe0123"
N = 5
ALPHAS = (0.5, 1.0)
PNG = b"\x89PNG\r\n\x1a\n"
METRICS = (
    "p_before",
    "p_after",
    "probe_shift",
    "flipped",
    "l0",
    "l1",
    "norm",
    "kl",
    "perplexity",
    "base_perplexity",
    "classifier_target",
    "classifier_base",
    "solve_seconds",
    "method_seconds",
)
# (method, solver, param, value) -> the α values it was run at
UNITS: dict[tuple[str, str | None, str | None, float | None], tuple[float, ...]] = {
    ("no_steering", None, None, None): ALPHAS,
    ("caa_mean_diff", None, None, None): ALPHAS,
    ("random_direction", None, None, None): (0.75, 1.5),  # no α = 1: 0.75 is the closest
    ("qp", "cvxpy", "lam", 0.1): ALPHAS,
    ("qp", "cvxpy", "lam", 1.0): ALPHAS,
    ("socp", "cvxpy", "eps", 0.5): ALPHAS,
    ("socp", "cvxpy", "eps", 2.0): ALPHAS,
}
FAILED = (("socp", "cvxpy", "eps", 0.5), 2)  # (unit, input): infeasible, no vector
ALREADY_TARGET = (0, 3)  # inputs in the target class before steering: flipped is null


def _records() -> list[dict[str, Any]]:
    """Rows as the runner writes them, with null for NaN; fixed by a seed."""
    rng = np.random.default_rng(7)
    records = []
    for unit, alphas in UNITS.items():
        method, solver, param, value = unit
        optimal = method in ("qp", "socp")
        supports = {
            i: sorted(int(f) for f in rng.choice(12, size=int(rng.integers(1, 5)), replace=False))
            for i in range(N)
        }
        solve = {i: round(float(rng.uniform(0.01, 0.5)), 6) for i in range(N)}
        for alpha in alphas:
            for i in range(N):
                failed = (unit, i) == FAILED
                p_before = round(float(rng.uniform(0.0, 0.6)), 6)
                shift = 0.0 if method == "no_steering" else round(float(rng.uniform(0, 0.4)), 6)
                support = supports[i] if optimal and not failed else None
                row: dict[str, Any] = {
                    "config_hash": HASH,
                    "method": method,
                    "solver": solver,
                    "param": param,
                    "value": value,
                    "alpha": alpha,
                    "input_id": i,
                    "text": f"input {i}",
                    "label": 0,
                    "shared": False,
                    "status": "infeasible" if failed else ("optimal" if optimal else "ok"),
                    "message": "infeasible: raise eps" if failed else None,
                    "support": support,
                    "p_before": p_before,
                    "p_after": p_before + shift,
                    "probe_shift": shift,
                    "flipped": None if i in ALREADY_TARGET else float(rng.integers(0, 2)),
                    "l0": None if support is None else float(len(support)),
                    "l1": None if support is None else round(float(rng.uniform(0, 3)), 6),
                    "norm": 0.0 if method == "no_steering" else round(float(rng.uniform(0, 5)), 6),
                    "kl": 0.0 if method == "no_steering" else round(float(rng.uniform(0, 1)), 6),
                    "perplexity": round(float(rng.uniform(5, 50)), 6),
                    "base_perplexity": round(float(rng.uniform(5, 50)), 6),
                    "classifier_target": round(float(rng.uniform(0, 1)), 6),
                    "classifier_base": round(float(rng.uniform(0, 1)), 6),
                    "solve_seconds": solve[i] if optimal else None,
                    "method_seconds": round(float(rng.uniform(0, 0.1)), 6),
                }
                if failed:
                    for key in METRICS:
                        if key not in ("solve_seconds", "method_seconds", "p_before"):
                            row[key] = None
                records.append(row)
    return records


def _generations() -> list[dict[str, Any]]:
    out = []
    for unit in (("no_steering", None, None, None), ("qp", "cvxpy", "lam", 0.1)):
        method, solver, param, value = unit
        for alpha in ALPHAS:
            for i in range(3):
                out.append(
                    {
                        "config_hash": HASH,
                        "method": method,
                        "solver": solver,
                        "param": param,
                        "value": value,
                        "alpha": alpha,
                        "input_id": i,
                        "prompt": f"Prompt {i} | with *stars*",
                        "steered": f"steered {method} a={alpha} i={i}\nline two " + "x" * 400,
                        "base": f"base continuation {i}",
                    }
                )
    # the same unit at a second setting: samples show a method's first setting only
    out.append({**out[-1], "value": 1.0, "steered": "SECOND SETTING"})
    return out


#: the columns a run of the first-party metrics declares in run.json, in table order
COLUMNS = [
    {"name": "probe_shift", "header": "Δ probe", "better": "higher", "role": "effect"},
    {"name": "p_after", "header": "P after", "better": "higher"},
    {"name": "flipped", "header": "flipped", "better": "higher"},
    {"name": "p_before", "header": "P before", "table": False},
    {"name": "l0", "header": "L0", "better": "lower", "role": "cost"},
    {"name": "l1", "header": "L1", "better": "lower"},
    {"name": "norm", "header": "norm", "better": "lower", "role": "cost"},
    {"name": "kl", "header": "KL", "better": "lower"},
    {"name": "perplexity", "header": "ppl", "better": "lower"},
    {"name": "base_perplexity", "header": "base ppl"},
    {"name": "classifier_target", "header": "clf target", "better": "higher"},
    {"name": "classifier_base", "header": "clf base"},
    {"name": "solve_seconds", "header": "solve s", "better": "lower", "role": "time"},
    {"name": "method_seconds", "header": "method s", "better": "lower"},
]
#: the methods of the run and their families, as run.json records them
METHODS = {
    "qp": {"name": "qp", "family": "optimal", "solver": "cvxpy"},
    "socp": {"name": "socp", "family": "optimal", "solver": "cvxpy"},
    "shared": {"name": "shared", "family": "optimal", "solver": "cvxpy"},
    "no_steering": {"name": "no_steering", "family": "baseline", "solver": None},
    "caa_mean_diff": {"name": "caa_mean_diff", "family": "baseline", "solver": None},
    "random_direction": {"name": "random_direction", "family": "baseline", "solver": None},
}


def _run_json(status: str = "complete") -> dict[str, Any]:
    return {
        "config_hash": HASH,
        "name": "synthetic",
        "created": "2024-01-02T03:04:05Z",
        "steerkit_version": "0.0.test",
        "model": "tiny",
        "preset": "tiny-preset",
        "layer": 1,
        "hook_point": "blocks.1.hook_resid_post",
        "sae": {"release": "tiny-release", "id": "tiny-sae", "d_sae": 12},
        "dataset": "sentiment-offline",
        "probe": {"name": "logistic", "accuracy_train": 0.95, "accuracy_test": 0.875},
        "target_class": 1,
        "margin": 0.5,
        "n_inputs": N,
        "timings": {"dataset": 0.5, "probe": 1.25, "methods": 3.0},
        "status": status,
        "columns": COLUMNS,
        "methods": METHODS,
    }


def _write_jsonl(path: pathlib.Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _make_run(
    root: pathlib.Path,
    records: list[dict[str, Any]] | None = None,
    generations: list[dict[str, Any]] | None = None,
    status: str = "complete",
) -> pathlib.Path:
    run_dir = root / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(_run_json(status)), encoding="utf-8")
    _write_jsonl(run_dir / "results.jsonl", _records() if records is None else records)
    if generations is not None:
        _write_jsonl(run_dir / "generations.jsonl", generations)
    return run_dir


def _hand_mean(values: list[Any]) -> float:
    kept = [float(v) for v in values if v is not None]
    return statistics.fmean(kept) if kept else math.nan


def _expected(records: list[dict[str, Any]], unit: tuple[Any, ...]) -> dict[str, Any]:
    alphas = UNITS[unit]
    alpha = min(alphas, key=lambda a: abs(a - 1.0))
    rows = [
        r
        for r in records
        if (r["method"], r["solver"], r["param"], r["value"]) == unit and r["alpha"] == alpha
    ]
    expected: dict[str, Any] = {
        "alpha": alpha,
        "n_inputs": len(rows),
        "n_failed": sum(r["status"] not in ("optimal", "ok") for r in rows),
    }
    for key in METRICS:
        if key in ("p_before",):
            continue
        expected[key] = _hand_mean([r[key] for r in rows])
    return expected


def _table_rows(report: str, header_start: str) -> list[list[str]]:
    """The body cells of the Markdown table whose header line starts with `header_start`."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    body = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        body.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return body


def _images(report: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, str]:
    run_dir = _make_run(tmp_path_factory.mktemp("full"), generations=_generations())
    path = write_report(run_dir)
    return run_dir, path.read_text(encoding="utf-8")


def test_comparison_table_equals_hand_computed_means() -> None:
    records = _records()
    table = comparison_table(records)
    assert [(e["method"], e["solver"], e["param"], e["value"]) for e in table] == sorted(
        UNITS, key=lambda u: (u[0], u[1] or "", u[2] or "", -1 if u[3] is None else u[3])
    )
    for entry in table:
        unit = (entry["method"], entry["solver"], entry["param"], entry["value"])
        for key, value in _expected(records, unit).items():
            assert entry[key] == pytest.approx(value, rel=1e-12, nan_ok=True), (unit, key)
    by_unit = {(e["method"], e["value"]): e for e in table}
    assert by_unit[("socp", 0.5)]["n_failed"] == 1 and by_unit[("socp", 0.5)]["n_inputs"] == N
    assert by_unit[("random_direction", None)]["alpha"] == 0.75
    assert math.isnan(by_unit[("caa_mean_diff", None)]["l0"])


def test_fraction_flipped_ignores_undefined_inputs() -> None:
    records = _records()
    unit = ("qp", "cvxpy", "lam", 0.1)
    rows = [r for r in records if r["method"] == "qp" and r["value"] == 0.1 and r["alpha"] == 1.0]
    defined = [r["flipped"] for r in rows if r["flipped"] is not None]
    assert len(defined) == N - len(ALREADY_TARGET)
    entry = next(e for e in comparison_table(records) if e["method"] == "qp" and e["value"] == 0.1)
    assert entry["flipped"] == pytest.approx(sum(defined) / len(defined))
    assert _expected(records, unit)["flipped"] == entry["flipped"]


def test_read_results_turns_null_into_nan(full_run: tuple[pathlib.Path, str]) -> None:
    rows = read_results(full_run[0])
    assert len(rows) == len(_records())
    baseline = next(r for r in rows if r["method"] == "caa_mean_diff")
    assert math.isnan(baseline["l0"]) and baseline["support"] is None
    qp = next(r for r in rows if r["method"] == "qp")
    assert isinstance(qp["support"], tuple) and list(qp["support"]) == sorted(qp["support"])


def test_report_table_shows_the_means_and_dashes_for_nan(
    full_run: tuple[pathlib.Path, str],
) -> None:
    _, report = full_run
    records = _records()
    body = _table_rows(report, "| method | solver | setting | α |")
    assert len(body) == len(UNITS)
    cells = {(r[0], r[2]): r for r in body}
    columns = [
        "probe_shift",
        "p_after",
        "flipped",
        "l0",
        "l1",
        "norm",
        "kl",
        "perplexity",
        "base_perplexity",
        "classifier_target",
        "classifier_base",
        "solve_seconds",
        "method_seconds",
    ]
    for unit in UNITS:
        expected = _expected(records, unit)
        setting = {"lam": "λ", "eps": "ε"}.get(unit[2] or "", "") + (
            f"={unit[3]:g}" if unit[2] else ""
        )
        row = cells[(unit[0], setting or "—")]
        assert row[4:6] == [str(expected["n_inputs"]), str(expected["n_failed"])]
        for column, cell in zip(columns, row[6:]):
            value = expected[column]
            assert cell == ("—" if math.isnan(value) else f"{value:.4g}"), (unit, column)
    assert cells[("caa_mean_diff", "—")][9] == "—"  # L0 of a vector with no SAE code
    assert cells[("caa_mean_diff", "—")][17] == "—"  # solve seconds of a method with no solve

    per_alpha = _table_rows(report, "| method | α=0.5 |")
    qp = next(r for r in per_alpha if r[0] == "qp · cvxpy · λ=0.1")
    for alpha, cell in zip((0.5, 0.75, 1.0, 1.5), qp[1:]):
        if alpha in ALPHAS:
            shifts = [
                r["probe_shift"]
                for r in records
                if r["method"] == "qp" and r["value"] == 0.1 and r["alpha"] == alpha
            ]
            assert cell == f"{statistics.fmean(shifts):.4g}"
        else:
            assert cell == "—"


def test_format_table_is_aligned_plain_text() -> None:
    table = comparison_table(_records())
    text = format_table(table)
    lines = text.splitlines()
    assert len(lines) == len(table) + 2
    assert lines[0].split()[:4] == ["method", "solver", "setting", "α"]
    assert "—" in lines[2 + [e["method"] for e in table].index("caa_mean_diff")]
    assert "|" not in text
    qp = next(e for e in table if e["method"] == "qp" and e["value"] == 0.1)
    assert f"{qp['probe_shift']:.4g}" in lines[2 + table.index(qp)]


def test_jaccard_between_socp_and_qp_supports(full_run: tuple[pathlib.Path, str]) -> None:
    _, report = full_run
    records = _records()

    def supports(method: str, value: float) -> dict[int, set[int]]:
        return {
            r["input_id"]: set(r["support"])
            for r in records
            if r["method"] == method
            and r["value"] == value
            and r["alpha"] == 1.0
            and r["support"] is not None
        }

    qp, socp = supports("qp", 0.1), supports("socp", 0.5)
    assert sorted(socp) == [0, 1, 3, 4]  # the failed input has no support
    jaccard = [len(qp[i] & socp[i]) / len(qp[i] | socp[i]) for i in sorted(socp)]
    assert (
        f"over {len(jaccard)} inputs: mean {statistics.fmean(jaccard):.3f}, "
        f"median {statistics.median(jaccard):.3f}, min {min(jaccard):.3f}, "
        f"max {max(jaccard):.3f}." in report
    )
    qp2, socp2 = supports("qp", 1.0), supports("socp", 2.0)
    pair = statistics.fmean(len(qp2[i] & socp2[i]) / len(qp2[i] | socp2[i]) for i in range(N))
    matrix = _table_rows(report, "| qp \\ socp |")
    assert matrix[1][0] == "qp · cvxpy · λ=1" and matrix[1][2] == f"{pair:.4g}"

    counts: dict[int, int] = {}
    for features in qp.values():
        for f in features:
            counts[f] = counts.get(f, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    listed = ", ".join(f"{f} ({c}/{N})" for f, c in top)
    assert f"Most often chosen features (id (inputs)): {listed}." in report


def test_figures_are_pngs_referenced_from_the_report(full_run: tuple[pathlib.Path, str]) -> None:
    run_dir, report = full_run
    images = _images(report)
    assert sorted(images) == sorted(
        [
            "pareto_l0.png",
            "pareto_norm.png",
            "support_qp.png",
            "support_socp.png",
            "jaccard.png",
            "solve_time.png",
        ]
    )
    for name in images:
        path = run_dir / "report" / name
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, name
    assert sorted(p.name for p in (run_dir / "report").glob("*.png")) == sorted(images)


def test_header_and_pareto_table(full_run: tuple[pathlib.Path, str]) -> None:
    _, report = full_run
    assert report.startswith("# Steering report: synthetic\n")
    for text in (
        "`cafe0123`",
        "tiny (preset tiny-preset)",
        "blocks.1.hook\\_resid\\_post",
        "tiny-release / tiny-sae (d_sae 12)",
        "logistic (train accuracy 0.95, test accuracy 0.875)",
        "| margin | 0.5 |",
        "| **total** | 4.75 |",
    ):
        assert text in report, text
    assert "not complete" not in report
    frontier = _table_rows(report, "| method | solver | setting | L0 | norm |")
    assert [(r[0], r[2]) for r in frontier] == [
        ("qp", "λ=0.1"),
        ("qp", "λ=1"),
        ("socp", "ε=0.5"),
        ("socp", "ε=2"),
    ]
    table = {(e["method"], e["value"]): e for e in comparison_table(_records())}
    for row in frontier:
        value = float(row[2].split("=")[1])
        entry = table[(row[0], value)]
        assert row[3:6] == [f"{entry[k]:.4g}" for k in ("l0", "norm", "probe_shift")]
    for method in ("qp", "socp"):  # of two settings, at least one is on each frontier
        assert any(r[6] == "yes" for r in frontier if r[0] == method)
        assert any(r[7] == "yes" for r in frontier if r[0] == method)


def test_solve_time_medians(full_run: tuple[pathlib.Path, str]) -> None:
    _, report = full_run
    records = _records()
    body = _table_rows(report, "| method | solver | solves |")
    assert [r[:3] for r in body] == [["qp", "cvxpy", str(2 * N)], ["socp", "cvxpy", str(2 * N)]]
    for row in body:
        seconds = [
            r["solve_seconds"] for r in records if r["method"] == row[0] and r["alpha"] == 1.0
        ]
        assert row[3] == f"{statistics.median(seconds):.4g}"


def test_generation_samples(full_run: tuple[pathlib.Path, str]) -> None:
    _, report = full_run
    section = report[report.index("## Steered generation samples") :]
    assert "### no\\_steering" in section and "### qp · cvxpy · λ=0.1" in section
    assert "SECOND SETTING" not in section  # a method's first setting only
    assert "**Input 0.**" in section and "**Input 1.**" in section
    assert "**Input 2.**" not in section  # the first two prompts only
    assert "Prompt: Prompt 0 \\| with \\*stars\\*" in section
    rows = _table_rows(section, "|  | continuation |")
    assert rows[0] == ["unsteered", "base continuation 0"]
    assert [r[0] for r in rows[:3]] == ["unsteered", "α=0.5", "α=1"]
    steered = rows[2][1]
    assert steered.startswith("steered no\\_steering a=1.0 i=0 ↵ line two xxx")
    assert steered.endswith("…") and len(steered) < 320


def test_same_input_gives_the_same_bytes(tmp_path: pathlib.Path) -> None:
    run_dir = _make_run(tmp_path, generations=_generations())
    first = write_report(run_dir)
    before = {p.name: p.read_bytes() for p in first.parent.iterdir()}
    write_report(run_dir)
    after = {p.name: p.read_bytes() for p in first.parent.iterdir()}
    assert before == after and len(before) == 7


def test_missing_sections_are_reported_not_crashed(tmp_path: pathlib.Path) -> None:
    baselines = [r for r in _records() if r["method"] in ("no_steering", "caa_mean_diff")]
    for r in baselines:
        r["kl"] = None
    run_dir = _make_run(tmp_path, records=baselines, status="running")
    stale = run_dir / "report" / "pareto_l0.png"  # left by an earlier report of a fuller run
    stale.parent.mkdir()
    stale.write_bytes(PNG)
    report = write_report(run_dir).read_text(encoding="utf-8")
    for text in (
        "**This run is not complete** (status: running)",
        "No qp, socp or shared results in this run",
        "No qp rows with a δ support",
        "No socp rows with a δ support",
        "Needs both qp and socp supports",
        "No row has a solve time",
        "No generations.jsonl in this run",
    ):
        assert text in report, text
    body = _table_rows(report, "| method | solver | setting | α |")
    assert [r[12] for r in body] == ["—", "—"]  # KL: all NaN
    assert _images(report) == [] and not list((run_dir / "report").glob("*.png"))


def test_qp_without_socp(tmp_path: pathlib.Path) -> None:
    records = [r for r in _records() if r["method"] != "socp"]
    report = write_report(_make_run(tmp_path, records=records, generations=[])).read_text()
    assert "No socp rows with a δ support" in report
    assert "![qp support heatmap](support_qp.png)" in report
    assert "Needs both qp and socp supports" in report
    assert "generations.jsonl holds no generations for this run." in report


def test_cut_short_lines_are_left_out_and_noted(tmp_path: pathlib.Path) -> None:
    run_dir = _make_run(tmp_path, generations=_generations())
    records = _records()
    cut = json.dumps({**records[0], "input_id": 99})[:60]
    path = run_dir / "results.jsonl"
    n = len(records)
    # a line cut mid-write, then (as after a resume) appended rows on a fresh line, then another
    # cut at the very end, without a newline
    with path.open("a", encoding="utf-8") as handle:
        handle.write(cut + "\n" + json.dumps({**records[0], "config_hash": "other"}) + "\n")
        handle.write(json.dumps(records[0]) + "\n" + cut)
    report = write_report(run_dir).read_text(encoding="utf-8")
    assert f"results.jsonl line(s) {n + 1}, {n + 4} are not JSON objects" in report
    assert "1 result rows of another config hash are left out." in report
    assert "1 result rows repeat an earlier (unit, α, input)" in report
    assert len(read_results(run_dir, HASH)) == n
    body = _table_rows(report, "| method | solver | setting | α |")
    qp = next(r for r in body if r[0] == "qp" and r[2] == "λ=0.1")
    expected = _expected(records, ("qp", "cvxpy", "lam", 0.1))
    assert qp[6] == f"{expected['probe_shift']:.4g}"


def test_missing_files_raise_a_steerkit_error_naming_the_file(tmp_path: pathlib.Path) -> None:
    run_dir = _make_run(tmp_path)
    (run_dir / "results.jsonl").unlink()
    with pytest.raises(SteerkitError, match=r"results\.jsonl not found"):
        write_report(run_dir)
    shutil.rmtree(run_dir)
    run_dir.mkdir()
    with pytest.raises(SteerkitError, match=r"run\.json not found"):
        write_report(run_dir)
    (run_dir / "run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SteerkitError, match=r"run\.json is not valid JSON"):
        write_report(run_dir)


def test_a_row_without_its_key_columns_is_named(tmp_path: pathlib.Path) -> None:
    records = _records()
    del records[3]["alpha"]
    run_dir = _make_run(tmp_path, records=records)
    with pytest.raises(SteerkitError, match=r"results\.jsonl:4: missing 'alpha'"):
        write_report(run_dir)
