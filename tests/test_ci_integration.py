"""CI integration: --junit (the XML GitLab, Jenkins, Azure DevOps, CircleCI and Buildkite read),
the compact markdown for PR comments, and the GitHub Action's script run against a loopback stand-in
for the GitHub REST API."""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import urllib.parse
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reference_mean, run_command

TARGET = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
GOOD = [1.1, 2.0, 2.9, 4.2, 5.0, 6.1]  # mean loss about 0.005
BAD = [2.0, 0.0, 3.5, 4.0, 8.0, 6.0]  # mean loss about 0.9
GROUPS = ["a", "b", "a", "b", "a", "b"]

# What the JUnit readers take (the Jenkins/Ant XSD that GitLab's parser follows): the elements and,
# for each, the attributes it must have.
JUNIT_CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"properties", "testcase", "system-out", "system-err"},
    "properties": {"property"},
    "testcase": {"failure", "error", "skipped", "system-out", "system-err"},
}
JUNIT_REQUIRED = {
    "testsuites": {"tests", "failures"},
    "testsuite": {"name", "tests", "failures", "errors"},
    "property": {"name", "value"},
    "testcase": {"name", "classname"},
    "failure": {"message"},
}


def check_junit_shape(root: ET.Element) -> None:
    """The document is what the readers parse: the nesting, the required attributes, and counts that add up."""
    assert root.tag == "testsuites"
    for element in root.iter():
        assert {child.tag for child in element} <= JUNIT_CHILDREN.get(element.tag, set()), element.tag
        assert JUNIT_REQUIRED.get(element.tag, set()) <= set(element.attrib), (element.tag, element.attrib)
    suites = root.findall("testsuite")
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        assert int(suite.get("failures", "")) == sum(case.find("failure") is not None for case in cases)
    assert int(root.get("tests", "")) == sum(int(s.get("tests", "")) for s in suites)
    assert int(root.get("failures", "")) == sum(int(s.get("failures", "")) for s in suites)


def _cases(suite: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in suite.findall("testcase")}


def _properties(suite: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in suite.iter("property")}


@pytest.fixture
def data(write_table) -> Path:
    return write_table("csv", y=TARGET, good=GOOD, bad=BAD, g=GROUPS)


def test_junit_has_a_case_per_result_and_group_and_a_failure_with_the_reason(smoothl1_command, data, tmp_path):
    junit, saved = tmp_path / "junit.xml", tmp_path / "report.json"
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "good,bad", "--group-by", "g",
                       "--fail-above", "0.1", "--junit", junit, "-o", saved, "-f", "json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert reference_mean(BAD, TARGET) > 0.1 > reference_mean(GOOD, TARGET)
    report = json.loads(saved.read_text())
    root = ET.fromstring(junit.read_bytes())
    check_junit_shape(root)
    results, groups = root.findall("testsuite")
    assert _properties(results) == {"signature": report["signature"], "version": report["version"]}
    cases = _cases(results)
    assert set(cases) == {"good", "bad"}
    assert cases["good"].find("failure") is None
    failure = cases["bad"].find("failure")
    assert failure is not None
    assert [failure.get("message")] == report["gate"]["failures"]
    assert failure.get("message", "").startswith(f"bad: {reference_mean(BAD, TARGET)!r} > 0.1")
    assert cases["good"].findtext("system-out") == f"value {reference_mean(GOOD, TARGET)!r}"
    group_cases = _cases(groups)
    assert set(group_cases) == {f"{g}: {p} (target y)" for g in "ab" for p in ("good", "bad")}
    assert all(case.find("failure") is None for case in group_cases.values())  # gates check results only
    rows_a = [i for i, g in enumerate(GROUPS) if g == "a"]
    expected = reference_mean([BAD[i] for i in rows_a], [TARGET[i] for i in rows_a])
    assert group_cases["a: bad (target y)"].findtext("system-out") == f"value {expected!r}, count 3"


def test_junit_of_a_baseline_regression_and_a_missing_pred(smoothl1_command, write_table, tmp_path):
    before = write_table("csv", name="before", y=TARGET, good=GOOD, bad=GOOD, gone=GOOD)
    after = write_table("csv", name="after", y=TARGET, good=GOOD, bad=BAD)
    baseline, junit = tmp_path / "main.json", tmp_path / "junit.xml"
    assert run_command(smoothl1_command, "eval", before, "-t", "y", "-o", baseline, "-f", "json").returncode == 0
    done = run_command(smoothl1_command, "eval", after, "-t", "y", "--baseline", baseline, "--max-increase", "2%",
                       "--junit", junit, "-f", "json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    failures = json.loads(done.stdout)["gate"]["failures"]
    root = ET.fromstring(junit.read_bytes())
    check_junit_shape(root)
    cases = _cases(root.find("testsuite"))  # type: ignore[arg-type]
    assert set(cases) == {"good", "bad", "gone"}
    assert cases["good"].find("failure") is None
    assert [cases[name].find("failure").get("message") for name in ("bad", "gone")] == failures  # type: ignore[union-attr]
    assert "exceeds the allowed increase of 2%" in failures[0]
    assert failures[1] == "gone: in the baseline but not in the current report"


def test_junit_is_well_formed_with_control_characters_in_names(smoothl1_command, write_table, tmp_path):
    """XML 1.0 cannot carry most control characters, even escaped: they are shown as Python writes them."""
    data = write_table("parquet", **{"y": TARGET, "m\x1b[31m\x01": BAD})
    junit = tmp_path / "junit.xml"
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "--fail-above", "0.1", "--junit", junit, "-q")
    assert done.returncode == 1
    root = ET.fromstring(junit.read_bytes())
    check_junit_shape(root)
    (case,) = root.iter("testcase")
    assert case.get("name") == "m\\x1b[31m\\x01"


def test_junit_that_would_overwrite_the_input_is_refused(smoothl1_command, data):
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "--junit", data)
    assert done.returncode == 2
    assert (
        done.stderr.decode()
        == f"Error: --junit {data} is the same file as input {data}: it would be overwritten; name another file\n"
    )


# ---------------------------------------------------------------- -f markdown-compact: the PR comment


def test_compact_markdown_has_the_verdict_and_the_comparison_only(smoothl1_command, write_table, tmp_path):
    before = write_table("csv", name="before", y=TARGET, good=GOOD, bad=GOOD)
    after = write_table("csv", name="after", y=TARGET, good=GOOD, bad=BAD, g=GROUPS)
    baseline = tmp_path / "main.json"
    assert run_command(smoothl1_command, "eval", before, "-t", "y", "-o", baseline, "-f", "json").returncode == 0
    done = run_command(smoothl1_command, "eval", after, "-t", "y", "-p", "good,bad", "--group-by", "g",
                       "--baseline", baseline, "-f", "markdown-compact")  # fmt: skip
    assert done.returncode == 1, done.stderr
    text = done.stdout.decode()
    good, bad = reference_mean(GOOD, TARGET), reference_mean(BAD, TARGET)
    assert text.startswith("**❌ smoothl1 gate failed**\n\n- bad: ")
    assert f"| good | {good:.6g} | {good:.6g} | 0 | +0% | ✅ ok |" in text
    change = f"{bad - good:.6g} | {(bad - good) / good * 100:+.3g}%"
    assert f"| bad | {good:.6g} | {bad:.6g} | {change} | ❌ regressed |" in text
    signature = json.loads(baseline.read_text())["signature"]
    assert text.rstrip().endswith(f"``{signature}`` · the full report (every statistic, worst rows, groups) "
                                  "is the JSON report (-o) and the job summary (-f markdown).")  # fmt: skip
    assert "Worst rows" not in text
    assert "By g" not in text
    assert len(text.splitlines()) == 12


def test_compact_markdown_without_a_baseline_lists_the_values(smoothl1_command, data):
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "good", "-f", "markdown-compact")
    assert done.returncode == 0, done.stderr
    assert f"| good | y | {reference_mean(GOOD, TARGET):.6g} | 6 |" in done.stdout.decode()


def test_compact_markdown_stays_below_60000_characters_with_a_pointer():
    from smoothl1_cli.render import compact_markdown

    changes = [{"pred": f"model_{i:05d}_" + "é" * 20, "target": "y", "baseline": 0.1, "current": 0.2,
                "change": 0.1, "relative_change": 1.0, "verdict": "regressed"} for i in range(3000)]  # fmt: skip
    failures = [f"{c['pred']}: 0.1 -> 0.2 exceeds the allowed increase of 0" for c in changes]
    report = {"gate": {"passed": False, "failures": failures}, "signature": "smooth_l1|beta:1",
              "baseline": {"max_increase": "0", "results": changes}}  # fmt: skip
    out = io.StringIO()
    compact_markdown(report, out)
    text = out.getvalue()
    assert len(text) < 59_000 < len(text.encode()) < 60_000  # characters (GitHub's unit) <= bytes
    assert text.endswith("more lines left out to stay under GitHub's 65,536-character comment limit; "
                         "see the JSON report (-o) for everything._\n")  # fmt: skip
    shown = text.splitlines()[:-2]
    assert all(line in ("", "**❌ smoothl1 gate failed**") or line.startswith("- model_") for line in shown)


# ---------------------------------------------------------------- the GitHub Action, against a stand-in API

REPO = "octo/models"
RUN_ID = 4242
ARTIFACT_ID = 99
ACTION = Path(__file__).resolve().parents[1] / "action.yml"


class FakeGitHub:
    """The REST endpoints the action calls, on 127.0.0.1, with every request recorded."""

    def __init__(self, baseline: bytes | None, comment_status: int = 201) -> None:
        self.baseline = baseline
        self.comment_status = comment_status
        self.comments: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        handler = self._handler()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.watchdog = threading.Timer(120, self.server.shutdown)  # stops by itself if a test never does
        self.watchdog.start()

    def close(self) -> None:
        self.watchdog.cancel()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        base = f"/repos/{REPO}"
        if method == "GET" and path == f"{base}/actions/workflows/gate.yml/runs":
            runs = [{"id": RUN_ID, "head_branch": "main"}] if self.baseline is not None else []
            return 200, {"total_count": len(runs), "workflow_runs": runs}, {}
        if method == "GET" and path == f"{base}/actions/runs/{RUN_ID}/artifacts":
            url = f"{self.url}{base}/actions/artifacts/{ARTIFACT_ID}/zip"
            found = [{"id": ARTIFACT_ID, "name": query["name"][0], "expired": False, "archive_download_url": url}]
            return 200, {"total_count": 1, "artifacts": found}, {}
        if method == "GET" and path == f"{base}/actions/artifacts/{ARTIFACT_ID}/zip":
            return 302, None, {"Location": f"{self.url}/blob/artifact-{ARTIFACT_ID}.zip?sig=x"}
        if method == "GET" and path == f"/blob/artifact-{ARTIFACT_ID}.zip":
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as bundle:
                bundle.writestr("report.json", self.baseline or b"")
            return 200, archive.getvalue(), {"Content-Type": "application/zip"}
        if method == "GET" and path == f"{base}/issues/5/comments":
            page = int(query["page"][0])
            return 200, self.comments[(page - 1) * 100 : page * 100], {}
        if method == "POST" and path == f"{base}/issues/5/comments":
            if self.comment_status != 201:
                return self.comment_status, {"message": "Resource not accessible by integration"}, {}
            self.comments.append({"id": 1000 + len(self.comments), "body": body["body"]})
            return 201, self.comments[-1], {}
        if method == "PATCH" and path.startswith(f"{base}/issues/comments/"):
            comment = next(c for c in self.comments if c["id"] == int(path.rpartition("/")[2]))
            comment["body"] = body["body"]
            return 200, comment, {}
        return 404, {"message": "Not Found"}, {}

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append({"method": self.command, "path": url.path, "query": url.query,
                                      "authorization": self.headers.get("Authorization")})  # fmt: skip
                status, payload, headers = fake.route(self.command, url.path, urllib.parse.parse_qs(url.query), body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _serve

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def make_fake():
    made: list[FakeGitHub] = []

    def make(baseline: bytes | None, comment_status: int = 201) -> FakeGitHub:
        made.append(FakeGitHub(baseline, comment_status))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


def _action() -> dict[str, Any]:
    """action.yml, parsed (PyYAML is a test dependency)."""
    yaml = pytest.importorskip("yaml")
    parsed: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    return parsed


def _gate_step() -> dict[str, Any]:
    steps = _action()["runs"]["steps"]
    return next(step for step in steps if step.get("id") == "gate")


def run_action(tmp_path: Path, fake: FakeGitHub, inputs: dict[str, str], event: dict[str, Any], ref: str) -> Any:
    """The action's gate step as the runner runs it: its `run` under bash, its `env` with the inputs
    substituted, and the variables GitHub provides; the venv the install step makes is this one."""
    temp = tmp_path / "runner-temp"
    python = temp / "smoothl1-venv" / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    declared = _action()["inputs"]
    values = {name: spec.get("default", "") for name, spec in declared.items()} | inputs
    values["token"] = "secret-token"
    step = _gate_step()
    env = {key: re.sub(r"\$\{\{ inputs\.([\w-]+) \}\}", lambda m: values[m.group(1)], value)
           for key, value in step["env"].items()}  # fmt: skip
    event_path, summary, output = tmp_path / "event.json", tmp_path / "summary.md", tmp_path / "output.txt"
    event_path.write_text(json.dumps(event))
    env |= {
        "PATH": os.environ["PATH"], "RUNNER_TEMP": str(temp), "GITHUB_API_URL": fake.url,
        "GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": REPO, "GITHUB_RUN_ID": "777",
        "GITHUB_REF": ref, "GITHUB_EVENT_PATH": str(event_path), "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output), "GITHUB_WORKFLOW_REF": f"{REPO}/.github/workflows/gate.yml@{ref}",
    }  # fmt: skip
    done = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, cwd=tmp_path, capture_output=True,
                          timeout=60, check=False)  # fmt: skip
    done.summary = summary.read_text() if summary.exists() else ""  # type: ignore[attr-defined]
    lines = output.read_text().splitlines() if output.exists() else []
    done.outputs = dict(line.split("=", 1) for line in lines)  # type: ignore[attr-defined]
    return done


def _pull_request(fork: bool = False) -> dict[str, Any]:
    head = "someone/models" if fork else REPO
    return {"pull_request": {"number": 5, "head": {"repo": {"full_name": head}}},
            "repository": {"full_name": REPO, "default_branch": "main"}}  # fmt: skip


@pytest.fixture
def gate_inputs(write_table, tmp_path) -> dict[str, Any]:
    """Main's data (both preds good), a pull request's (bad regressed), and main's saved report."""
    before = write_table("csv", name="main", y=TARGET, good=GOOD, bad=GOOD)
    after = write_table("csv", name="pr", y=TARGET, good=GOOD, bad=BAD)
    saved = tmp_path / "main.json"
    assert run_command([sys.executable, "-m", "smoothl1_cli"], "eval", before, "-t", "y", "-o", saved).returncode == 0
    return {"main": before, "pr": after, "baseline": saved.read_bytes()}


def test_action_inputs_are_all_passed_to_the_script_and_it_installs_from_its_own_checkout():
    action = _action()
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) >= {"predictions", "target", "pred", "options", "baseline-artifact",
                                     "max-increase", "fail-above", "comment"}  # fmt: skip
    env = _gate_step()["env"]
    for name in action["inputs"]:
        key = "GITHUB_TOKEN" if name == "token" else "INPUT_" + name.upper().replace("-", "_")
        assert env[key] == f"${{{{ inputs.{name} }}}}"
    install = action["runs"]["steps"][0]["run"]
    assert '-m pip install --quiet "$GITHUB_ACTION_PATH"' in install
    assert "pip install smoothl1" not in ACTION.read_text()
    upload = action["runs"]["steps"][-1]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["name"] == "${{ inputs.baseline-artifact }}"
    assert upload["if"].startswith("always()")  # the report is kept when the gate fails


def test_action_on_a_pull_request_compares_with_mains_artifact_and_keeps_one_comment(tmp_path, make_fake, gate_inputs):
    fake = make_fake(gate_inputs["baseline"])
    inputs = {"predictions": str(gate_inputs["pr"]), "target": "y", "pred": "good,bad", "max-increase": "5%"}
    done = run_action(tmp_path, fake, inputs, _pull_request(), "refs/pull/5/merge")
    assert done.returncode == 1, done.stderr
    good, bad = reference_mean(GOOD, TARGET), reference_mean(BAD, TARGET)
    report = json.loads(Path(done.outputs["report"]).read_text())
    assert [(c["pred"], c["baseline"], c["current"], c["verdict"]) for c in report["baseline"]["results"]] == [
        ("good", good, good, "ok"), ("bad", good, bad, "regressed")]  # fmt: skip
    assert done.outputs == {"passed": "false", "exit-code": "1", "failures": "1", "report": done.outputs["report"],
                            "baseline-found": "true"}  # fmt: skip
    (failure,) = report["gate"]["failures"]
    escaped = failure.replace("%", "%25")  # as the runner decodes a workflow command
    assert "%" in failure
    assert done.stdout.decode().splitlines() == [f"::error title=smoothl1 gate::{escaped}"]
    assert done.summary.startswith("**❌ smoothl1 gate failed**")
    assert "Worst rows:" in done.summary  # the full markdown report in the job summary
    runs = next(r for r in fake.requests if r["path"].endswith("/runs"))
    assert urllib.parse.parse_qs(runs["query"])["branch"] == ["main"]
    assert urllib.parse.parse_qs(runs["query"])["status"] == ["success"]
    assert urllib.parse.parse_qs(runs["query"])["event"] == ["push"]  # never a fork's pull request from its main
    assert all(r["authorization"] == "Bearer secret-token" for r in fake.requests if r["path"].startswith("/repos"))
    blob = next(r for r in fake.requests if r["path"].startswith("/blob/"))
    assert blob["authorization"] is None  # the token never goes to the artifact's storage
    (comment,) = fake.comments
    assert comment["body"].startswith("<!-- smoothl1-gate smoothl1-baseline -->\n**❌ smoothl1 gate failed**")
    assert "| bad |" in comment["body"]
    assert "Worst rows" not in comment["body"]
    assert comment["body"].rstrip().endswith("(https://github.example/octo/models/actions/runs/777)")
    again = run_action(tmp_path, fake, {**inputs, "pred": "good"}, _pull_request(), "refs/pull/5/merge")
    assert again.returncode == 1  # bad is in the baseline but missing now
    assert len(fake.comments) == 1  # updated in place, not a second comment
    assert "❌ missing" in fake.comments[0]["body"]
    assert [r["method"] for r in fake.requests if "/issues/" in r["path"]] == ["GET", "POST", "GET", "PATCH"]


def test_action_annotates_at_most_ten_failures(tmp_path, make_fake, write_table):
    data = write_table("csv", name="many", y=TARGET, **{f"m{i:02d}": BAD for i in range(12)})
    fake = make_fake(None)
    done = run_action(tmp_path, fake, {"predictions": str(data), "target": "y", "fail-above": "0.1"},
                      _pull_request(), "refs/pull/5/merge")  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0].startswith("::warning title=smoothl1::No baseline: no successful run of gate.yml on main")
    errors = [line for line in lines if line.startswith("::error")]
    assert errors[:10] == [f"::error title=smoothl1 gate::m{i:02d}: {reference_mean(BAD, TARGET)!r} > 0.1"
                           for i in range(10)]  # fmt: skip
    assert errors[10:] == ["::error title=smoothl1 gate::2 more failures: see the job summary"]
    assert done.outputs["failures"] == "12"
    assert done.outputs["baseline-found"] == "false"
    note = "> No baseline: no successful run of gate.yml on main has an artifact 'smoothl1-baseline' (yet)"
    assert note in done.summary
    (comment,) = fake.comments
    assert note in comment["body"]  # the comment says so too


@pytest.mark.parametrize("how", ["fork", "403"])
def test_action_skips_the_comment_with_a_note_where_it_cannot_write(tmp_path, make_fake, gate_inputs, how):
    fake = make_fake(gate_inputs["baseline"], comment_status=403 if how == "403" else 201)
    inputs = {"predictions": str(gate_inputs["main"]), "target": "y"}
    done = run_action(tmp_path, fake, inputs, _pull_request(fork=how == "fork"), "refs/pull/5/merge")
    assert done.returncode == 0, done.stderr
    assert done.summary.startswith("**✅ smoothl1 gate passed**")
    assert fake.comments == []
    note = {
        "fork": "> Comment skipped: this pull request comes from a fork, whose token cannot comment; "
        "the report is here.",
        "403": "> Comment skipped: cannot post the comment (HTTP 403); the report is here.",
    }[how]
    assert note in done.summary
    assert done.outputs["passed"] == "true"


def test_action_on_the_default_branch_makes_the_baseline_without_fetching_one(tmp_path, make_fake, gate_inputs):
    fake = make_fake(gate_inputs["baseline"])
    push = {"repository": {"full_name": REPO, "default_branch": "main"}}
    done = run_action(tmp_path, fake, {"predictions": str(gate_inputs["main"]), "target": "y"}, push, "refs/heads/main")
    assert done.returncode == 0, done.stderr
    assert fake.requests == []
    report = json.loads(Path(done.outputs["report"]).read_text())
    assert report["results"][0]["value"] == reference_mean(GOOD, TARGET)
    assert "baseline" not in report


def test_action_bad_input_exits_2_with_an_annotation(tmp_path, make_fake, gate_inputs):
    fake = make_fake(gate_inputs["baseline"])
    done = run_action(tmp_path, fake, {"predictions": str(gate_inputs["pr"]), "target": "nope"}, _pull_request(),
                      "refs/pull/5/merge")  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.decode() == f"Error: {gate_inputs['pr']}: target column 'nope' not found (columns: y, good, bad)\n"
    )
    assert "::error title=smoothl1::smoothl1 exited 2; its error is in the log above" in done.stdout.decode()
    assert done.outputs["report"] == ""
    assert fake.comments == []


# ---------------------------------------------------------------- the Python API takes Arrow streams


class OnlyArrowStream:
    """An object that exports Arrow data only through the PyCapsule stream interface (as Polars and DuckDB do)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._table.__arrow_c_stream__(requested_schema)


def _arrow_table() -> Any:
    import pyarrow as pa

    return pa.table({"y": TARGET, "pred": BAD, "g": GROUPS})


@pytest.mark.parametrize("wrap", ["capsule only", "RecordBatchReader"])
def test_evaluate_takes_an_arrow_stream_without_copying_it(monkeypatch, wrap):
    import pyarrow as pa

    from smoothl1_cli import evaluate, readers

    table = _arrow_table()
    source = OnlyArrowStream(table) if wrap == "capsule only" else pa.RecordBatchReader.from_batches(
        table.schema, table.to_batches())  # fmt: skip
    seen: list[Any] = []
    real = readers.source_from_table
    monkeypatch.setattr(readers, "source_from_table", lambda t, label: seen.append(t) or real(t, label))
    report = evaluate(source, target="y", group_by="g").to_dict()
    assert report["results"][0]["value"] == reference_mean(BAD, TARGET)
    rows_b = [i for i, g in enumerate(GROUPS) if g == "b"]
    (group_b,) = [g for g in report["groups"] if g["group"] == "b"]
    assert group_b["value"] == reference_mean([BAD[i] for i in rows_b], [TARGET[i] for i in rows_b])
    (received,) = seen
    original = table.column("pred").chunks[0].buffers()[1]
    assert received.column("pred").chunks[0].buffers()[1].address == original.address  # the same memory


def test_evaluate_takes_a_polars_frame():
    pl = pytest.importorskip("polars")
    from smoothl1_cli import evaluate

    frame = pl.DataFrame({"y": TARGET, "pred": BAD})
    assert evaluate(frame, target="y").to_dict()["results"][0]["value"] == reference_mean(BAD, TARGET)


def test_evaluate_names_what_it_takes_for_anything_else():
    from smoothl1_cli import evaluate
    from smoothl1_cli.errors import InputError

    with pytest.raises(InputError, match=r"cannot evaluate a dict: .* or an object exporting Arrow data"):
        evaluate({"y": TARGET}, target="y")


def test_noncharacters_in_names_keep_the_junit_file_well_formed(smoothl1_command, tmp_path):
    import xml.etree.ElementTree as ET

    data = tmp_path / "d.csv"
    data.write_text("y,p\ufffe\n0,1\n", encoding="utf-8")
    junit = tmp_path / "junit.xml"
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "--fail-above", "0", "--junit", junit, "-q")
    assert done.returncode == 1
    names = [case.get("name") for case in ET.parse(junit).getroot().iter("testcase")]
    assert names == ["p\\ufffe"]


def test_compact_markdown_shows_an_infinite_value_as_inf(smoothl1_command, tmp_path):
    """Found in review: it went through the JSON, where inf is null, and read nan."""
    data = tmp_path / "inf.csv"
    data.write_text("y,p\n-1e308,1e308\n0,1\n")
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-p", "p", "-f", "markdown-compact")
    assert done.returncode == 0, done.stderr
    assert "| p | y | inf | 2 |" in done.stdout.decode()
