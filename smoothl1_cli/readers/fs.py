"""URIs: which filesystem holds an input or output, listing and globbing there, and what may be shown.

`s3://`, `gs://`, `abfs://` and `hdfs://` are pyarrow's own filesystems; `http(s)://` and every
other scheme go through fsspec where it is installed (the `fsspec` extra). Credentials come from
the environment as each store's SDK reads it (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*),
never from options, and `redact` keeps the ones a URI may carry out of labels and messages.
pyarrow.fs and fsspec are imported only when a URI is used, so `smoothl1 --help` never pays for them.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from smoothl1_cli.errors import InputError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

PYARROW_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs", "file")
CONNECT_SECONDS = 5.0  # HTTP (S3's SDK gives up connecting after 1 s by itself)
RETRY_SECONDS = 10.0  # GCS retries for 15 minutes by default: an unreachable store would hang that long
SHOWN_SETTINGS = frozenset(  # query keys that configure a store, never a secret: shown as given
    ("region", "scheme", "endpoint_override", "allow_bucket_creation", "allow_bucket_deletion", "tls_ca_file_path",
     "default_bucket_location", "project_id", "replication", "buffer_size", "default_block_size", "user")
)  # fmt: skip
_URI = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)(?P<rest>[?#].*)?", re.S
)
_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_PARTITION = re.compile(r"(?P<key>[^=./][^=/]*)=(?P<value>[^/]*)")
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # how Hive and Spark name the directory of missing values


def is_uri(spec: str) -> bool:
    """Whether an input or output names a URI (`scheme://...`) rather than a local path.

    >>> is_uri("s3://bucket/x.parquet"), is_uri("runs/x.parquet"), is_uri("C:/runs/x.csv")
    (True, False, False)
    """
    return _URI.match(spec) is not None


def name_of(spec: str) -> str:
    """What names a file's format: a URI's path, without the query that may configure its store.

    >>> name_of("s3://bucket/rows.csv?endpoint_override=localhost:9000"), name_of("runs/rows.csv")
    ('/rows.csv', 'runs/rows.csv')
    """
    match = _URI.fullmatch(spec)
    return spec if match is None else match["path"]


def redact(uri: str) -> str:
    """The URI as it may be shown: a `user:password@` and every query value but known settings hidden.

    >>> redact("s3://KEY:SECRET@bucket/x.csv?region=eu-west-1&X-Amz-Signature=abc")
    's3://***@bucket/x.csv?region=eu-west-1&X-Amz-Signature=***'
    >>> redact("s3://KEY:SE/CRET@bucket/x.csv")  # a / left unescaped in the secret: hidden all the same
    's3://***@bucket/x.csv'
    """
    match = _URI.fullmatch(uri)
    if match is None:
        return uri
    location = match["authority"] + match["path"]
    at = location.find("@")
    if at >= 0 and ":" in location[:at]:  # the first @ after a colon ends the credentials (a URL's path
        location = "***" + location[at:]  # rarely has one there: hiding too much is the safe mistake)
    rest = match["rest"] or ""
    if rest.startswith("?"):
        query, hash_, fragment = rest[1:].partition("#")
        shown = []
        for part in query.split("&"):
            key = part.partition("=")[0]
            shown.append(part if not part or unquote(key) in SHOWN_SETTINGS else f"{key}=***")
        rest = "?" + "&".join(shown) + hash_ + fragment
    return f"{match['scheme']}://{location}{rest}"


def redact_text(text: str) -> str:
    """`text` with every URI in it redacted (an HTTP client's message quotes the URL it failed on)."""
    return _IN_TEXT.sub(lambda match: redact(match.group()), text)


def identity(uri: str) -> str:
    """The URI without credentials, query or trailing slash: two spellings of one object compare equal.

    >>> identity("S3://KEY:SECRET@bucket/x.csv?endpoint_override=localhost:9000")
    's3://bucket/x.csv'
    """
    match = _URI.fullmatch(uri)
    if match is None:
        return uri
    return f"{match['scheme'].lower()}://{match['authority'].rpartition('@')[2]}{match['path'].rstrip('/')}"


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem that holds `uri` and the path of the object there.

    One filesystem is kept per store (scheme, host or bucket, settings), so the files of one bucket
    share its connections; it gives up on an unreachable store within seconds."""
    match = _URI.fullmatch(uri)
    if match is None:
        raise InputError(f"{redact(uri)}: not a URI")
    scheme = match["scheme"].lower()
    store = f"{scheme}://{match['authority']}{match['rest'] or ''}"
    if scheme in PYARROW_SCHEMES:
        import pyarrow as pa
        import pyarrow.fs as pafs

        try:
            filesystem, path = pafs.FileSystem.from_uri(uri)
        except pa.ArrowInvalid as exc:  # a syntax error, an unknown setting in the query
            raise InputError(f"{redact(uri)}: {redact_text(str(exc))}") from exc
        if store not in _STORES:
            _STORES[store] = _patient(filesystem)
        return _STORES[store], path
    return _fsspec(scheme, uri)


_STORES: dict[str, pafs.FileSystem] = {}  # the filesystem made first for each store (a process uses a few)


def _patient(filesystem: pafs.FileSystem) -> pafs.FileSystem:
    """`filesystem` with bounded retries: S3 retries a refused connection with backoff for seconds
    by default, GCS for 15 minutes."""
    import pyarrow.fs as pafs

    if isinstance(filesystem, pafs.S3FileSystem):
        limits: dict[str, Any] = {"retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3)}
    elif isinstance(filesystem, pafs.GcsFileSystem):
        import datetime

        limits = {"retry_time_limit": datetime.timedelta(seconds=RETRY_SECONDS)}
    else:
        return filesystem
    rebuild, (settings,) = filesystem.__reduce__()  # the options the URI gave (pickling's own round trip)
    patient: pafs.FileSystem = rebuild({**settings, **limits})
    return patient


def _fsspec(scheme: str, uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        import fsspec.core
    except ImportError:
        raise InputError(f"{redact(uri)}: reading {scheme}:// needs fsspec: pip install 'smoothl1[fsspec]'") from None
    import pyarrow.fs as pafs

    options: dict[str, Any] = {}
    if scheme in ("http", "https"):
        import aiohttp  # fsspec's HTTP client (the extra installs it)

        options["client_kwargs"] = {"timeout": aiohttp.ClientTimeout(sock_connect=CONNECT_SECONDS, sock_read=60)}
    try:
        filesystem, path = fsspec.core.url_to_fs(uri, **options)
    except ValueError as exc:  # fsspec: "Protocol not known"
        raise InputError(f"{redact(uri)}: unknown URI scheme {scheme}://") from exc
    except ImportError as exc:  # a scheme whose fsspec backend is not installed (sftp needs paramiko, ...)
        raise InputError(f"{redact(uri)}: {exc}") from exc
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path


def stat(filesystem: pafs.FileSystem, path: str) -> pafs.FileInfo:
    """The file's info. Where fsspec says 'not found' for any failure (a refused connection, a 403),
    its reason is raised instead, so that `explain` can say what went wrong."""
    import pyarrow.fs as pafs

    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound and isinstance(filesystem, pafs.PyFileSystem):
        try:
            filesystem.handler.fs.info(path)
        except FileNotFoundError as exc:
            reason = exc.__cause__
            if reason is not None and getattr(reason, "status", None) not in (404, 410):
                raise StoreError(explain(reason) or redact_text(str(reason))) from reason
    return info


class StoreError(OSError):
    """A store's failure, already in words (an HTTP client's errors are no OSError, and name the URL)."""


def explain(exc: BaseException) -> str | None:
    """What a store's failure means, in the words of a local one: 'no such file', 'access denied',
    'cannot reach the store (...)'; None where it is no store's (a parse error, say)."""
    if isinstance(exc, StoreError):
        return str(exc)
    text = str(exc)
    status = getattr(exc, "status", None)  # an HTTP client's response error
    aiohttp = sys.modules.get("aiohttp")
    if status in (404, 410) or "NO_SUCH_KEY" in text:
        return "no such file"
    if "NO_SUCH_BUCKET" in text:
        return "no such bucket"
    if status in (401, 403) or any(code in text for code in _DENIED):
        return "access denied"
    refused = ConnectionRefusedError | ConnectionResetError | ConnectionAbortedError | TimeoutError  # (no BrokenPipe)
    unreachable = isinstance(exc, refused) or "NETWORK_CONNECTION" in text
    if unreachable or (
        aiohttp is not None and isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ServerTimeoutError)
    ):
        detail = text.rpartition("Details: ")[2] or type(exc).__name__
        return f"cannot reach the store ({redact_text(' '.join(detail.split()))})"
    if status is not None:
        return f"the server answered {status} {getattr(exc, 'message', '')}".rstrip()
    if "Unable to load libjvm" in text or "Unable to load libhdfs" in text:  # (its message lists every path tried)
        return "hdfs:// needs a Java runtime and Hadoop's libhdfs (JAVA_HOME, HADOOP_HOME, ARROW_LIBHDFS_DIR)"
    return None


def client_errors() -> tuple[type[Exception], ...]:
    """The errors of the store clients loaded in this process that are no OSError: aiohttp's (fsspec's HTTP)."""
    aiohttp = sys.modules.get("aiohttp")
    return () if aiohttp is None else (aiohttp.ClientError,)


_DENIED = ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "AccessDenied", "Forbidden")


def hive_partitions(path: str) -> dict[str, str | None]:
    """The `key=value` directories right above a file, outermost first: a Hive-style dataset's
    constant columns. Values are unescaped as Hive writes them (%2F is /); its null directory is None.

    >>> hive_partitions("bucket/sales/year=2024/city=New%20York/part-0.parquet")
    {'year': '2024', 'city': 'New York'}
    >>> hive_partitions("runs/k=1/latest/x.csv")  # only the run of them right above the file
    {}
    """
    found: list[tuple[str, str | None]] = []
    for part in reversed(path.split("/")[:-1]):
        match = _PARTITION.fullmatch(part)
        if match is None:
            break
        value = unquote(match["value"])
        found.append((unquote(match["key"]), None if value == NULL_PARTITION else value))
    return dict(reversed(found))


def is_partition(name: str) -> bool:
    """Whether a directory's name is `key=value`: a Hive-style partition, whose files are the dataset's."""
    return _PARTITION.fullmatch(name) is not None


def expand(uri: str, is_data_file: Callable[[str], bool]) -> tuple[str, list[str]] | None:
    """('pattern', the URIs of the files that match) for a glob; ('directory', its data files and those
    of its Hive-style `key=value/` subdirectories, at any depth) for a directory; both sorted. None
    for anything else (a file, or nothing there: opening it says which)."""
    import pyarrow.fs as pafs

    match = _URI.fullmatch(uri)
    assert match is not None
    root, rest = f"{match['scheme']}://{match['authority']}", match["rest"] or ""
    if _has_magic(match["authority"]):
        raise InputError(f"{redact(uri)}: a pattern can only follow the bucket or host")
    parts = match["path"].split("/")
    first = next((i for i, part in enumerate(parts) if _has_magic(part)), None)
    if first is not None:  # list below the pattern's fixed start once, then match every file's relative path
        found = _files_below(root + "/".join(parts[:first]), rest)
        return "pattern", [child for relative, child in found if _matches(parts[first:], relative.split("/"))]
    filesystem, path = resolve(uri)
    if stat(filesystem, path).type != pafs.FileType.Directory:
        return None
    dataset = []
    for relative, child in _files_below(root + match["path"].rstrip("/"), rest):
        *directories, name = relative.split("/")
        if all(map(is_partition, directories)) and is_data_file(name):
            dataset.append(child)
    return "directory", dataset


def _has_magic(part: str) -> bool:
    return any(char in part for char in "*[")  # `?` begins a URI's query


def _files_below(base: str, rest: str) -> list[tuple[str, str]]:
    """Every file below directory URI `base` (`rest`: its query), sorted by name: its path relative to
    `base`, and its URI (names percent-encoded where the store's paths are not URLs already)."""
    import pyarrow.fs as pafs

    filesystem, path = resolve(base + rest)
    prefix = path.rstrip("/") + "/"
    encode = not isinstance(filesystem, pafs.PyFileSystem)  # fsspec's paths are written as in its URIs
    found = []
    for info in filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=True)):
        if info.type == pafs.FileType.File and info.path.startswith(prefix):
            relative = info.path[len(prefix) :]
            found.append((relative, f"{base}/{quote(relative, safe='/=') if encode else relative}{rest}"))
    return sorted(found)


def _matches(pattern: list[str], names: list[str]) -> bool:
    """Whether a relative path matches a glob's parts as local patterns do: `*` within a name, `**` any
    number of directories, a name that begins with '.' only where the pattern's part does too.

    >>> _matches(["**", "*.csv"], ["a", "b", "x.csv"]), _matches(["*.csv"], [".x.csv"])
    (True, False)
    """
    if not pattern:
        return not names
    if not names:
        return all(part == "**" for part in pattern)
    part, name = pattern[0], names[0]
    visible = part.startswith(".") or not name.startswith(".")
    if part == "**":
        return _matches(pattern[1:], names) or (visible and _matches(pattern, names[1:]))
    return visible and fnmatch.fnmatchcase(name, part) and _matches(pattern[1:], names[1:])
