"""Inputs and outputs on object stores and web servers: S3 (moto's server on loopback), HTTP (a
static file server on loopback), Hive-style directories; the installed command, as a user runs it."""

from __future__ import annotations

import functools
import http.server
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smoothl1_cli import output, readers
from smoothl1_cli.errors import InputError
from smoothl1_cli.plot import check_path
from smoothl1_cli.readers import fs
from tests.conftest import eval_json, invoke, table_bytes

ROWS = 120
RNG = np.random.default_rng(7)
TARGET = RNG.normal(0.0, 3.0, ROWS)
TABLE = pa.table(
    {
        "id": [f"r{i:03d}" for i in range(ROWS)],
        "y": TARGET,
        "pred": TARGET + RNG.standard_t(2, ROWS),
    }
)
FILES = {  # one table in four formats: read as four inputs of one table
    "plain/y.csv": table_bytes(TABLE.slice(0, 30), "csv"),
    "plain/y.csv.gz": table_bytes(TABLE.slice(30, 30), "csv.gz"),
    "plain/y.jsonl": table_bytes(TABLE.slice(60, 30), "jsonl"),
}
_parquet = io.BytesIO()
pq.write_table(TABLE.slice(90, 30), _parquet, row_group_size=8)  # 8 + 8 + 8 + 6 rows
FILES["plain/y.parquet"] = _parquet.getvalue()
HIVE = {  # a Hive-style dataset (year and model from the directories), files not in it, a folder without data
    "hive/year=2023/model=a/part-0.csv": table_bytes(TABLE.slice(0, 40), "csv"),
    "hive/year=2024/model=a/part-0.csv": table_bytes(TABLE.slice(40, 50), "csv"),
    "hive/year=2024/model=b/part-0.csv": table_bytes(TABLE.slice(90, 30), "csv"),
    "hive/year=2024/_SUCCESS": b"",
    "hive/year=2024/notes/ignored.csv": table_bytes(TABLE.slice(0, 5), "csv"),
    "hive/.hidden.csv": table_bytes(TABLE.slice(0, 5), "csv"),
    "docs/readme.md": b"no data here\n",
}
BUCKET = "data"
SECRET_MARK = "do-not-print"  # in every secret the tests make up, and looked for in every output


# ---------------------------------------------------------------- the servers


@pytest.fixture(scope="session")
def local_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FILES and HIVE on disk, and a web server's root: the same bytes as in the bucket."""
    root = tmp_path_factory.mktemp("store")
    for name, data in {**FILES, **HIVE}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="session")
def s3() -> Iterator[dict[str, Any]]:
    """moto's S3 on a free loopback port (one per test worker), with FILES and HIVE in a bucket and three
    users: `reader` may read and write it, `viewer` only read it, `nobody` neither. Auth is enforced
    once they exist; `client` is the reader's."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    setup = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "setup"}
    client = boto3.client("s3", aws_secret_access_key="setup", **setup)
    client.create_bucket(Bucket=BUCKET)
    for name, data in {**FILES, **HIVE}.items():
        client.put_object(Bucket=BUCKET, Key=name, Body=data)
    iam = boto3.client("iam", aws_secret_access_key="setup", **setup)
    keys = {}
    for user, actions in (("reader", ["s3:*"]), ("viewer", ["s3:GetObject", "s3:ListBucket"]), ("nobody", [])):
        iam.create_user(UserName=user)
        if actions:
            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
            iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
        keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # from now on every request is authorized
        assert json.load(answer)["status"] == "ok"
    reader = {
        "aws_access_key_id": keys["reader"]["AccessKeyId"],
        "aws_secret_access_key": keys["reader"]["SecretAccessKey"],
    }
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **reader)
    yield {"endpoint": endpoint, "host": f"{host}:{port}", "keys": keys, "client": client}
    server.stop()


def _aws_env(endpoint: str, key: dict[str, str]) -> dict[str, str]:
    """The environment a user of an S3-compatible store sets: credentials and the endpoint, nothing in
    the command line. The SDK's config files and the EC2 metadata service are kept out of it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=key["AccessKeyId"],
        AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


@pytest.fixture
def smoothl1(smoothl1_command: list[str], s3: dict[str, Any]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """smoothl1(*args, env=None): the installed command with the reader's credentials (or `env`). No
    secret may appear in what it prints, and a run that succeeds prints nothing on stderr."""

    def run(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = env or _aws_env(s3["endpoint"], s3["keys"]["reader"])
        done = subprocess.run(
            [*smoothl1_command, *map(str, args)], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        if done.returncode == 0:
            assert done.stderr == ""  # no warning, no noise from a store's client at exit
        printed = done.stdout + done.stderr
        secrets = [SECRET_MARK, env["AWS_SECRET_ACCESS_KEY"], *(key["SecretAccessKey"] for key in s3["keys"].values())]
        for secret in secrets:
            assert secret not in printed
            assert quote(secret, safe="") not in printed
        return done

    return run


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that answers Range requests, as web servers and CDNs do (Parquet is read
    from its footer up); quiet."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if wanted is None or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        start, end = int(wanted[1]), min(int(wanted[2] or len(data) - 1), len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return io.BytesIO(data[start : end + 1])


@pytest.fixture(scope="session")
def web(local_files: Path) -> Iterator[str]:
    """http://127.0.0.1:PORT serving `local_files`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RangeHandler, directory=local_files))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _closed_port() -> int:
    """A loopback port that nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _same_report(remote: str, local: str, labels: dict[str, str]) -> None:
    """Two JSON reports alike byte for byte once each input's label is swapped for the local path."""
    for uri, path in labels.items():
        remote = remote.replace(json.dumps(uri), json.dumps(path))
    assert remote == local


def _local_report(*args: Any) -> str:
    """The JSON report of a local run (in this process: the same code as the command's, and faster)."""
    result = invoke(["eval", *args, "-f", "json"])
    assert result.exit_code == 0, result.stderr
    return result.stdout


# ---------------------------------------------------------------- S3


def test_every_format_on_s3_gives_the_local_report(smoothl1, local_files):
    uris = [f"s3://{BUCKET}/{name}" for name in FILES]
    paths = [str(local_files / name) for name in FILES]
    options = ["-t", "y", "--id", "id", "--chunk-rows", "7"]
    remote = smoothl1("eval", *uris, *options, "-f", "json")
    assert remote.returncode == 0, remote.stderr
    report = json.loads(remote.stdout)
    assert [(i["path"], i["format"], i["rows"]) for i in report["inputs"]] == [
        (uris[0], "csv", 30),
        (uris[1], "csv", 30),
        (uris[2], "jsonl", 30),
        (uris[3], "parquet", 30),
    ]
    _same_report(remote.stdout, _local_report(*paths, *options), dict(zip(uris, paths, strict=True)))


def test_parquet_on_s3_has_its_row_groups_and_reopens_from_the_uri(s3):
    """What a worker does with a piece: open_source from the spec string alone, read a run of row groups."""
    uri = f"s3://{BUCKET}/plain/y.parquet"
    script = (
        "from smoothl1_cli.readers import open_lazily, open_source\n"
        f"lazy = open_lazily({uri!r})\n"
        "print(lazy.group_rows, lazy.rows)\n"
        f"piece = open_source({uri!r})\n"
        "ids = [v for b in piece.batches(['id'], {'id'}, 100, range(1, 3)) for v in b.column(0).to_pylist()]\n"
        "piece.close(); lazy.close(); print(ids[0], ids[-1], len(ids))\n"
    )
    env = _aws_env(s3["endpoint"], s3["keys"]["reader"])
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["(8, 8, 8, 6) 30", "r098 r113 16"]  # rows 90 + 8 to 90 + 23


def test_a_glob_on_s3_reads_its_matches_in_sorted_order(smoothl1, s3, local_files):
    """With the endpoint in the URI's query instead of AWS_ENDPOINT_URL_S3: every file found keeps it."""
    env = _aws_env(s3["endpoint"], s3["keys"]["reader"])
    del env["AWS_ENDPOINT_URL_S3"]
    query = f"?endpoint_override={s3['host']}&scheme=http"
    options = ["-t", "y", "-p", "pred", "-f", "json"]
    pattern = smoothl1("eval", f"s3://{BUCKET}/plain/y.*{query}", *options, env=env)
    assert pattern.returncode == 0, pattern.stderr
    names = sorted(FILES)  # by name, as on disk: y.csv, y.csv.gz, y.jsonl, y.parquet
    uris = [f"s3://{BUCKET}/{name}{query}" for name in names]
    assert [i["path"] for i in json.loads(pattern.stdout)["inputs"]] == uris
    paths = [str(local_files / name) for name in names]
    _same_report(pattern.stdout, _local_report(*paths, *options[:-2]), dict(zip(uris, paths, strict=True)))


def test_a_hive_dataset_on_s3_groups_by_its_partition_keys(smoothl1, local_files):
    """Only the dataset's files (not _SUCCESS, a hidden file or a subdirectory that is no partition);
    year and model are columns, and CSV's text keys of plain integers are integers, as in a CSV column."""
    options = ["-t", "y", "-p", "pred", "--group-by", "year", "--id", "model", "--top", "1"]
    remote = smoothl1("eval", f"s3://{BUCKET}/hive/", *options, "-f", "json")
    assert remote.returncode == 0, remote.stderr
    report = json.loads(remote.stdout)
    names = [
        "hive/year=2023/model=a/part-0.csv",
        "hive/year=2024/model=a/part-0.csv",
        "hive/year=2024/model=b/part-0.csv",
    ]
    assert [i["path"] for i in report["inputs"]] == [f"s3://{BUCKET}/{name}" for name in names]
    assert [(g["group"], g["count"]) for g in report["groups"]] == [(2023, 40), (2024, 80)]
    d = np.abs(TABLE["pred"].to_numpy() - TABLE["y"].to_numpy())
    worst = int(np.argmax(np.where(d < 1, 0.5 * d * d, d - 0.5)))
    assert report["worst_rows"][0]["id"] == ("a" if worst < 90 else "b")
    local = _local_report(local_files / "hive", *options)
    _same_report(remote.stdout, local, {f"s3://{BUCKET}/{name}": str(local_files / name) for name in names})


def test_reports_are_written_to_s3_whole_and_only_on_success(smoothl1, s3):
    uri = f"s3://{BUCKET}/plain/y.parquet"
    outputs = ["-o", f"s3://{BUCKET}/out/report.json", "--per-row", f"s3://{BUCKET}/out/rows.csv"]
    done = smoothl1("eval", uri, "-t", "y", "-f", "json", *outputs)
    assert done.returncode == 0, done.stderr
    read = functools.partial(s3["client"].get_object, Bucket=BUCKET)
    assert read(Key="out/report.json")["Body"].read().decode() == done.stdout
    rows = read(Key="out/rows.csv")["Body"].read().decode().splitlines()
    assert rows[0] == "row,loss"
    assert len(rows) == 31
    never = ["-o", f"s3://{BUCKET}/out/never.json", "--per-row", f"s3://{BUCKET}/out/never.csv"]
    failed = smoothl1("eval", f"s3://{BUCKET}/plain/y.jsonl", "-t", "id", "-p", "y", *never)  # fails when read
    assert failed.returncode == 2
    assert "'r060' is not a number" in failed.stderr
    listed = s3["client"].list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"]
    assert sorted(item["Key"] for item in listed) == ["out/report.json", "out/rows.csv"]


@pytest.mark.parametrize("spec", [f"s3://{BUCKET}/plain/missing.csv", "s3://no-such-bucket/y.csv"])
def test_a_missing_object_or_bucket_is_named(smoothl1, spec):
    done = smoothl1("eval", spec, "-t", "y")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"Error: {spec}: no such file\n")


def test_access_denied_names_the_uri(smoothl1, s3):
    uri = f"s3://{BUCKET}/plain/y.parquet"
    done = smoothl1("eval", uri, "-t", "y", env=_aws_env(s3["endpoint"], s3["keys"]["nobody"]))
    assert (done.returncode, done.stderr) == (2, f"Error: {uri}: access denied\n")
    output = f"s3://{BUCKET}/out/denied.json"
    written = smoothl1("eval", uri, "-t", "y", "-q", "-o", output, env=_aws_env(s3["endpoint"], s3["keys"]["viewer"]))
    assert (written.returncode, written.stderr) == (2, f"Error: cannot write -o {output}: access denied\n")


def test_an_unreachable_store_fails_within_seconds(smoothl1, s3):
    env = _aws_env(f"http://127.0.0.1:{_closed_port()}", s3["keys"]["reader"])
    uri = f"s3://{BUCKET}/plain/y.parquet"
    started = time.monotonic()
    done = smoothl1("eval", uri, "-t", "y", env=env)
    assert time.monotonic() - started < 10
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: {uri}: cannot reach the store (")
    assert done.stderr.count("\n") == 1


def test_credentials_in_a_uri_work_and_never_appear(smoothl1, s3):
    """A key pair in the URI (its secret percent-encoded) is used as pyarrow reads it, and shown as ***;
    so is a wrong one (SECRET_MARK: looked for in every output)."""
    key = s3["keys"]["reader"]
    env = _aws_env(s3["endpoint"], {"AccessKeyId": "none", "SecretAccessKey": f"{SECRET_MARK}-env"})
    uri = f"s3://{key['AccessKeyId']}:{quote(key['SecretAccessKey'], safe='')}@{BUCKET}/plain/y.csv"
    done = smoothl1("eval", uri, "-t", "y", "-f", "json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["inputs"][0]["path"] == f"s3://***@{BUCKET}/plain/y.csv"
    wrong = f"s3://{key['AccessKeyId']}:{SECRET_MARK}@{BUCKET}/plain/y.csv"
    refused = smoothl1("eval", wrong, "-t", "y", env=env)
    assert (refused.returncode, refused.stderr) == (2, f"Error: s3://***@{BUCKET}/plain/y.csv: access denied\n")


# ---------------------------------------------------------------- HTTP (fsspec)


def test_csv_and_parquet_over_http_give_the_local_report(smoothl1, web, local_files):
    names = ["plain/y.csv", "plain/y.parquet"]
    urls = [f"{web}/{name}" for name in names]
    paths = [str(local_files / name) for name in names]
    remote = smoothl1("eval", *urls, "-t", "y", "-f", "json")
    assert remote.returncode == 0, remote.stderr
    _same_report(remote.stdout, _local_report(*paths, "-t", "y"), dict(zip(urls, paths, strict=True)))


def test_a_missing_or_unreachable_url_is_named(smoothl1, web):
    missing = f"{web}/plain/missing.csv?token={SECRET_MARK}"
    done = smoothl1("eval", missing, "-t", "y")
    assert (done.returncode, done.stderr) == (2, f"Error: {web}/plain/missing.csv?token=***: no such file\n")
    unreachable = f"http://127.0.0.1:{_closed_port()}/y.csv"
    done = smoothl1("eval", unreachable, "-t", "y")
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: {unreachable}: cannot reach the store (")


# ---------------------------------------------------------------- in this process: Hive on disk, fsspec's memory store


def test_a_local_hive_dataset_has_its_keys_as_columns(tmp_path):
    """Parquet holds text keys as text: year=2023 of a Parquet dataset is the group "2023"; Hive's
    directory of missing values is the missing group."""
    for year, (start, stop) in {"2023": (0, 50), "2024": (50, ROWS), "__HIVE_DEFAULT_PARTITION__": (0, 10)}.items():
        (tmp_path / f"year={year}").mkdir()
        pq.write_table(TABLE.slice(start, stop - start), tmp_path / f"year={year}" / "part.parquet")
    report = eval_json([tmp_path, "-t", "y", "--group-by", "year"])
    assert [(g["group"], g["count"]) for g in report["groups"]] == [("2023", 50), ("2024", 70), (None, 10)]
    assert [Path(i["path"]).parent.name for i in report["inputs"]] == sorted(p.name for p in tmp_path.iterdir())
    result = invoke(["eval", tmp_path / "year=2023" / "part.parquet", "-t", "year"])
    assert result.exit_code == 2
    assert "column 'year' is of type string, not numeric" in result.stderr


def test_a_partition_key_that_the_file_has_is_read_from_the_file(tmp_path):
    (tmp_path / "id=zzz").mkdir()
    path = tmp_path / "id=zzz" / "part.csv"
    path.write_bytes(table_bytes(TABLE, "csv"))
    source = readers.open_source(str(path))
    assert source.columns == ["id", "y", "pred"]
    assert next(source.batches(["id"], {"id"}, 100)).column(0)[0].as_py() == "r000"
    source.close()


def test_globs_and_directories_on_an_fsspec_store():
    """Any fsspec filesystem lists as a store does: here its memory one, in this process."""
    import fsspec

    memory = fsspec.filesystem("memory")
    root = f"/smoothl1-{os.getpid()}"
    for name in ("a/k=1/x.csv", "a/k=2/y.csv", "a/z.csv", "a/other/w.csv", "a/.hidden.csv", "b/x.csv", "c/notes.md"):
        memory.pipe(f"{root}/{name}", b"y,pred\n1,2\n")
    try:
        assert readers.expand_inputs([f"memory://{root}/a"]) == [
            f"memory://{root}/a/k=1/x.csv",
            f"memory://{root}/a/k=2/y.csv",
            f"memory://{root}/a/z.csv",
        ]
        assert readers.expand_inputs([f"memory://{root}/**/x.csv", f"memory://{root}/*/z.*"]) == [
            f"memory://{root}/a/k=1/x.csv",
            f"memory://{root}/b/x.csv",
            f"memory://{root}/a/z.csv",
        ]
        source = readers.open_source(f"memory://{root}/a/k=2/y.csv")
        assert source.columns == ["y", "pred", "k"]
        assert next(source.batches(["k", "y"], {"k"}, 10)).to_pylist() == [{"k": "2", "y": 1.0}]
        source.close()
        for spec, says in (
            (f"memory://{root}/c", "no data files in this directory"),
            (f"memory://{root}/*.tsv", "no files match"),
        ):
            with pytest.raises(InputError, match=f"^{re.escape(spec)}: {says}"):
                readers.expand_inputs([spec])
    finally:
        memory.rm(root, recursive=True)


def test_an_output_that_is_an_input_is_refused_on_a_store_too():
    uri = f"s3://{BUCKET}/plain/y.csv"
    with pytest.raises(InputError, match=re.escape(f"--per-row {uri}?region=eu is the same file as input {uri}")):
        output.refuse_overwriting({"--per-row": f"{uri}?region=eu"}, [uri], None)
    output.refuse_overwriting({"-o": f"s3://{BUCKET}/plain/report.json"}, [uri], None)  # another object: fine


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("s3://bucket/x.csv", "s3://bucket/x.csv"),
        ("s3://AKIA:s3cr3t@bucket/x.csv", "s3://***@bucket/x.csv"),
        ("hdfs://alice@namenode:8020/x.csv", "hdfs://alice@namenode:8020/x.csv"),
        ("https://host/x.csv?sig=abc&sv=2024&region=eu", "https://host/x.csv?sig=***&sv=***&region=eu"),
        (
            "s3://b/x.csv?endpoint_override=localhost:9000&scheme=http",
            "s3://b/x.csv?endpoint_override=localhost:9000&scheme=http",
        ),
    ],
)
def test_redact_hides_secrets_and_keeps_settings(uri, shown):
    assert fs.redact(uri) == shown
    assert fs.redact_text(f"failed on {uri}: 403") == f"failed on {shown}: 403"


def test_an_output_on_a_store_without_atomic_uploads_is_moved_into_place_whole():
    """fsspec's memory store stands for HDFS and the like: a hidden temporary name, then a move; on a
    failure, the old file as it was and no temporary one."""
    import fsspec

    memory = fsspec.filesystem("memory")
    folder = f"/smoothl1-out-{os.getpid()}"
    target = f"memory://{folder}/report.json"
    try:
        with output.atomic_output(target, "-o") as file:
            file.write(b"first")

        def fail() -> None:
            with output.atomic_output(target, "-o") as file:
                file.write(b"half")
                raise RuntimeError("the run failed")

        with pytest.raises(RuntimeError):
            fail()
        assert memory.cat(f"{folder}/report.json") == b"first"
        assert memory.ls(folder, detail=False) == [f"{folder}/report.json"]
    finally:
        memory.rm(folder, recursive=True)


def test_a_uri_for_fsspec_without_fsspec_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec.core", None)  # as if it were not installed
    with pytest.raises(InputError, match=re.escape("http://host/x.csv: reading http:// needs fsspec: pip install")):
        fs.resolve("http://host/x.csv")


def test_an_output_uri_is_named_by_its_path_not_its_query(tmp_path) -> None:
    """A URI's query configures its store: the extension is the path's, and a secret there is hidden."""
    path = tmp_path / "w.csv"
    path.write_text("y,pred\n1,0.5\n")
    refused = invoke(["eval", path, "-t", "y", "-q", "--per-row", "s3://bucket/rows.txt?token=SECRET"])
    assert refused.exit_code == 2
    assert "--per-row s3://bucket/rows.txt?token=***: name a .csv or .parquet file" in refused.stderr
    assert "SECRET" not in refused.stderr
    check_path("s3://bucket/loss.svg?endpoint_override=127.0.0.1:9000")  # an .svg, whatever the query says
    with pytest.raises(InputError, match=r"--plot s3://bucket/loss.png\?token=\*\*\*: name a .svg file"):
        check_path("s3://bucket/loss.png?token=SECRET")
