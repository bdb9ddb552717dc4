"""The GitHub Action's logic (action.yml runs `python -m smoothl1_cli.github_action`): stdlib only.

Off the default branch it fetches the default branch's last successful baseline report (an artifact)
through the GitHub REST API at GITHUB_API_URL, runs `smoothl1 eval` (with `--baseline` when one was
found), appends the markdown report to GITHUB_STEP_SUMMARY, posts or updates one sticky comment on the
pull request (skipped with a note for forks, whose token is read-only, and on a 403), prints a
`::error` annotation per failed gate (at most 10: GitHub shows no more per step), writes its outputs
to GITHUB_OUTPUT and exits with smoothl1's status.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANNOTATIONS = 10  # GitHub shows at most 10 error annotations per step
TIMEOUT = 30  # seconds per API request
RUNS = 20  # how many of the default branch's successful runs are searched for the baseline artifact
COMMENT_PAGES = 30  # at most this many pages of 100 comments are searched for the sticky one


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    location: str | None = None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by hand, without the token: an artifact's zip lives on blob storage."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class GitHub:
    """The few REST calls the action makes, through urllib."""

    def __init__(self, api_url: str, repository: str, token: str) -> None:
        self.base = f"{api_url.rstrip('/')}/repos/{repository}"
        self.token = token
        self._opener = urllib.request.build_opener(_NoRedirect)

    def call(self, method: str, path: str, body: Any = None, authorized: bool = True) -> Response:
        """`path` is relative to the repository (`/issues/1/comments`) or a full URL."""
        url = path if "://" in path else self.base + path
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "smoothl1-action"}  # fmt: skip
        if authorized and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=TIMEOUT) as response:
                return Response(response.status, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, exc.read(), exc.headers.get("Location"))

    def download(self, url: str) -> Response:
        """GET `url`, following one redirect without the token."""
        first = self.call("GET", url)
        if first.status in (301, 302, 303, 307, 308) and first.location:
            return self.call("GET", first.location, authorized=False)
        return first


def fetch_baseline(github: GitHub, workflow: str, branch: str, artifact: str, dest: Path) -> str | None:
    """Save the report in `artifact` of the newest successful run of `workflow` on `branch` to `dest`;
    None when there is one, else why there is none."""
    # push runs only: a pull request from a fork's own `main` also has head_branch main
    query = urllib.parse.urlencode({"branch": branch, "event": "push", "status": "success", "per_page": RUNS})
    runs = github.call("GET", f"/actions/workflows/{urllib.parse.quote(workflow)}/runs?{query}")
    if runs.status != 200:
        return f"cannot list the runs of {workflow} on {branch} (HTTP {runs.status})"
    for run in runs.json().get("workflow_runs", []):
        name = urllib.parse.urlencode({"name": artifact})
        found = github.call("GET", f"/actions/runs/{run['id']}/artifacts?{name}")
        artifacts = (
            [a for a in found.json().get("artifacts", []) if not a.get("expired")] if found.status == 200 else []
        )
        if not artifacts:
            continue
        archive = github.download(artifacts[0]["archive_download_url"])
        if archive.status != 200:
            return f"cannot download artifact {artifact!r} of run {run['id']} (HTTP {archive.status})"
        try:
            with zipfile.ZipFile(io.BytesIO(archive.body)) as bundle:
                reports = sorted(n for n in bundle.namelist() if n.endswith(".json"))
                if not reports:
                    return f"artifact {artifact!r} of run {run['id']} holds no .json report"
                dest.write_bytes(bundle.read(reports[0]))
        except zipfile.BadZipFile:
            return f"artifact {artifact!r} of run {run['id']} is not a zip archive"
        return None
    return f"no successful run of {workflow} on {branch} has an artifact {artifact!r} (yet)"


def upsert_comment(github: GitHub, number: int, marker: str, body: str) -> str | None:
    """Post `body` on pull request `number`, or update the comment holding `marker`; None when done,
    else why not."""
    for page in range(1, COMMENT_PAGES + 1):
        listed = github.call("GET", f"/issues/{number}/comments?per_page=100&page={page}")
        if listed.status != 200:
            return f"cannot read the pull request's comments (HTTP {listed.status})"
        comments = listed.json()
        mine = next((c for c in comments if marker in (c.get("body") or "")), None)
        if mine is not None:
            done = github.call("PATCH", f"/issues/comments/{mine['id']}", {"body": body})
            return None if done.status == 200 else f"cannot update comment {mine['id']} (HTTP {done.status})"
        if len(comments) < 100:
            break
    done = github.call("POST", f"/issues/{number}/comments", {"body": body})
    return None if done.status == 201 else f"cannot post the comment (HTTP {done.status})"


def escape(text: str) -> str:
    """A workflow command's message: %, CR and LF encoded as GitHub's runner decodes them."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def eval_command(env: dict[str, str], report: Path, baseline: Path | None) -> list[str]:
    """The `smoothl1 eval` command line the inputs ask for."""
    command = [sys.executable, "-m", "smoothl1_cli", "eval", *shlex.split(env["INPUT_PREDICTIONS"])]
    command += ["-t", env["INPUT_TARGET"]] + (["-p", env["INPUT_PRED"]] if env.get("INPUT_PRED") else [])
    command += shlex.split(env.get("INPUT_OPTIONS", ""))
    if env.get("INPUT_FAIL_ABOVE"):
        command += ["--fail-above", env["INPUT_FAIL_ABOVE"]]
    if baseline is not None:
        command += ["--baseline", str(baseline), "--max-increase", env.get("INPUT_MAX_INCREASE") or "0"]
    return command + ["-o", str(report), "-f", "markdown"]


def main(env: dict[str, str]) -> int:
    """Run the gate as the action; returns smoothl1's exit status."""
    event_path = env.get("GITHUB_EVENT_PATH")
    event: dict[str, Any] = json.loads(Path(event_path).read_text()) if event_path else {}
    repository = env["GITHUB_REPOSITORY"]
    default_branch = event.get("repository", {}).get("default_branch", "main")
    pull = event.get("pull_request")
    on_default = pull is None and env.get("GITHUB_REF") == f"refs/heads/{default_branch}"
    artifact = env.get("INPUT_BASELINE_ARTIFACT") or "smoothl1-baseline"
    github = GitHub(env.get("GITHUB_API_URL", "https://api.github.com"), repository, env.get("GITHUB_TOKEN", ""))
    out = Path(env.get("RUNNER_TEMP", ".")) / "smoothl1"
    out.mkdir(parents=True, exist_ok=True)
    report, baseline = out / "report.json", out / "baseline.json"
    report.unlink(missing_ok=True)  # a report left by an earlier step must not pass for this one's
    notes = []
    found = False
    if not on_default:
        workflow = env.get("GITHUB_WORKFLOW_REF", "").partition("@")[0].rpartition("/")[2]
        why = fetch_baseline(github, workflow, default_branch, artifact, baseline)
        found = why is None
        if why is not None:
            notes.append(f"No baseline: {why}; the gate ran without --baseline.")
            print(f"::warning title=smoothl1::{escape(notes[-1])}")
    command = eval_command(env, report, baseline if found else None)
    done = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    status = done.returncode
    markdown = done.stdout.decode("utf-8", "replace")
    failures: list[str] = []
    if status in (0, 1) and report.exists():
        saved = json.loads(report.read_text(encoding="utf-8"))
        failures = saved["gate"]["failures"]
        for failure in failures[:ANNOTATIONS]:
            print(f"::error title=smoothl1 gate::{escape(failure)}")
        if len(failures) > ANNOTATIONS:
            print(f"::error title=smoothl1 gate::{len(failures) - ANNOTATIONS} more failures: see the job summary")
        if pull is not None and env.get("INPUT_COMMENT", "true").lower() == "true":
            notes.append(_comment(github, env, pull, artifact, saved, notes) or "")  # "": posted
    else:
        print(f"::error title=smoothl1::smoothl1 exited {status}; its error is in the log above")
        markdown = f"**smoothl1 exited {status}** (an input or usage error, or a bug): see the step's log.\n"
    with open(env["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
        summary.write(markdown + "".join(f"\n> {note}\n" for note in notes if note))
    outputs = {"passed": str(status == 0).lower(), "exit-code": str(status), "failures": str(len(failures)),
               "report": str(report) if report.exists() else "", "baseline-found": str(found).lower()}  # fmt: skip
    with open(env["GITHUB_OUTPUT"], "a", encoding="utf-8") as file:
        file.writelines(f"{key}={value}\n" for key, value in outputs.items())
    return status


def _comment(
    github: GitHub, env: dict[str, str], pull: dict[str, Any], artifact: str, saved: Any, notes: list[str]
) -> str | None:
    """Post or update the sticky comment (with the notes so far: no baseline, say); a note on why not,
    where it could not be."""
    from smoothl1_cli.render import compact_markdown

    head = (pull.get("head") or {}).get("repo") or {}
    if head.get("full_name") != env["GITHUB_REPOSITORY"]:
        return "Comment skipped: this pull request comes from a fork, whose token cannot comment; the report is here."
    text = io.StringIO()
    compact_markdown(saved, text)
    run = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}/actions/runs/"
    marker = f"<!-- smoothl1-gate {artifact} -->"
    body = (f"{marker}\n{text.getvalue()}" + "".join(f"\n> {note}\n" for note in notes)
            + f"\n[Job summary and report artifact]({run}{env.get('GITHUB_RUN_ID', '')})\n")  # fmt: skip
    why = upsert_comment(github, int(pull["number"]), marker, body)
    return None if why is None else f"Comment skipped: {why}; the report is here."


if __name__ == "__main__":
    sys.exit(main(dict(os.environ)))
