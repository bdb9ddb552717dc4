"""The command line: a thin Click group. Options -> Options -> evaluate -> render -> exit code.

Only click is imported at start-up; everything else loads once a command runs, so
`smoothl1 --help` and `--version` stay instant.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import click

from smoothl1_cli import __version__
from smoothl1_cli import options as choices
from smoothl1_cli.errors import TERMINATING, ExitCode, InputError, Terminated, printable

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

ISSUES_URL = "https://github.com/smoothl1/smoothl1/issues"


class BadInput(click.ClickException):
    exit_code = ExitCode.BAD_INPUT  # shown as "Error: <message>" on stderr, no traceback


class Cli(click.Group):
    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's first sentence in full (click cuts it to fit one line): the list wraps it."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1 << 16)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        """The one edge: input errors exit 2, a closed pipe quietly, Ctrl-C 130, our bugs 3."""
        try:
            return super().invoke(ctx)
        except InputError as exc:
            raise BadInput(printable(str(exc))) from exc
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(ExitCode.INTERRUPTED) from None
        except Terminated as exc:
            click.echo(f"{signal.strsignal(exc.signum)}.", err=True)  # "Terminated.", "Hangup.", ...
            raise click.exceptions.Exit(ExitCode.SIGNALLED + exc.signum) from None
        except BrokenPipeError:
            from smoothl1_cli.output import silence_stdout

            silence_stdout()
            raise click.exceptions.Exit(ExitCode.OK) from None
        except OSError as exc:
            if exc.errno not in _ENVIRONMENT_ERRORS:
                _internal_error(exc, ctx)
            raise BadInput(f"cannot write the output: {exc.strerror}") from exc
        except Exception as exc:
            _internal_error(exc, ctx)


# --help's headings, and the options under each (by parameter name); anything else goes under "Other".
HELP_SECTIONS = {
    "Columns": ("target", "pred", "weight", "id_column", "group_by", "labels", "on"),
    "Loss": ("loss", "beta", "delta", "sigma", "reduction", "multioutput"),
    "Data handling": ("input_format", "nan_policy"),
    "Output": ("fmt", "output", "quiet", "top", "per_row", "junit", "plot"),
    "Gates": ("fail_above", "baseline", "max_increase"),
    "Statistics": ("ci", "bootstrap", "seed", "exact_quantiles"),
    "Execution": ("engine", "workers", "scheduler", "backend", "chunk_rows", "progress", "debug"),
}


class SectionedCommand(click.Command):
    """A command whose --help lists its options under HELP_SECTIONS' headings (click has no option groups)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {title: [] for title in [*HELP_SECTIONS, "Other"]}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None  # usage names arguments
            if record is not None:
                title = next((t for t, names in HELP_SECTIONS.items() if param.name in names), "Other")
                sections[title].append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


class Seed(click.IntRange):
    """A 64-bit seed: its range read as such in --help, not as 20 digits."""

    def _describe_range(self) -> str:
        return "0<=x<2**64"


def _paths(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """A path: left to the shell's own file completion."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def _columns(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Column names from the header of the first INPUT that is a file (after the last comma of a list);
    nothing where the header cannot be read."""
    from click.shell_completion import CompletionItem

    from smoothl1_cli.readers import open_source

    given = [*(ctx.params.get("inputs") or ()), *ctx.args]  # before an option's missing value, INPUT is in args
    files = [spec for spec in given if os.path.isfile(spec)]
    if not files:
        return []
    try:
        source = open_source(files[0], ctx.params.get("input_format"))
    except Exception:  # a completion must never fail: no names, and the shell carries on
        return []
    source.close()
    done, comma, partial = incomplete.rpartition(",")
    return [CompletionItem(done + comma + name) for name in source.columns if name.startswith(partial)]


_ENVIRONMENT_ERRORS = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EBADF}


def _internal_error(exc: Exception, ctx: click.Context) -> NoReturn:
    debug = os.environ.get("SMOOTHL1_DEBUG") == "1" or bool(ctx.meta.get("smoothl1.debug"))
    if debug:
        import traceback

        traceback.print_exception(exc)
    click.echo(
        f"Error: internal error in smoothl1 {__version__} ({type(exc).__name__}: {printable(str(exc))}). "
        f"This is a bug: please report it at {ISSUES_URL}"
        + ("" if debug else ", with the output of the same command run with --debug"),
        err=True,
    )
    raise click.exceptions.Exit(ExitCode.INTERNAL)


@click.group(
    cls=Cli,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Exit codes:
  0    evaluated, every gate passed
  1    evaluated, a gate failed (the report is still printed and written)
  2    usage or input error (one "Error: ..." line on stderr)
  3    internal error (a bug: please report it; --debug shows the traceback)
  130  interrupted (Ctrl-C); 128 + N for another signal N (143: SIGTERM, 129: SIGHUP)""",
)
@click.version_option(__version__, "-V", "--version", prog_name="smoothl1")
def cli() -> None:
    """Evaluate model outputs with the Smooth L1 (or Huber) loss, exactly as PyTorch computes it.

    Run `smoothl1 COMMAND --help` for a command's options.
    """


# Signals whose default action ends the process at once, temporary files left behind: handled like Ctrl-C.
def _terminate(signum: int, frame: Any) -> NoReturn:
    for other in TERMINATING:  # a second signal must not cut the cleanup short
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum)


@cli.command("eval", cls=SectionedCommand)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...", shell_complete=_paths)
@click.option(
    "-t",
    "--target",
    "target",
    multiple=True,
    required=True,
    metavar="COL",
    shell_complete=_columns,
    help="Target column(s); repeat or comma-separate.",
)
@click.option(
    "-p",
    "--pred",
    "pred",
    multiple=True,
    metavar="COL",
    shell_complete=_columns,
    help="Prediction column(s); default: detected by name.",
)
@click.option(
    "--loss",
    type=click.Choice(choices.LOSSES),
    default="smooth_l1",
    show_default=True,
    help="Smooth L1 (PyTorch's smooth_l1_loss, with --beta) or Huber (huber_loss, with --delta).",
)
@click.option("--beta", type=float, metavar="B", help="Smooth L1's beta (>= 0; 0 is L1).  [default: 1]")
@click.option("--delta", type=float, metavar="D", help="Huber's delta (> 0).  [default: 1]")
@click.option("--sigma", type=float, metavar="S", help="Detection papers' sigma: beta = 1 / sigma**2.")
@click.option(
    "--multioutput",
    type=click.Choice(choices.MULTIOUTPUTS),
    default="elementwise",
    show_default=True,
    help="How `overall` is formed for several targets.",
)
@click.option("--input-format", type=click.Choice(choices.INPUT_FORMATS), help="Override detection.")
@click.option(
    "--reduction",
    type=click.Choice(choices.REDUCTIONS),
    default="mean",
    show_default=True,
    help="The value reported: the mean or sum of the per-row losses; none streams them to stdout as CSV.",
)
@click.option(
    "-w",
    "--weight",
    metavar="COL",
    shell_complete=_columns,
    help="Sample-weight column: value = sum(w*l) / sum(w).",
)
@click.option(
    "--nan-policy",
    type=click.Choice(choices.NAN_POLICIES),
    default="error",
    show_default=True,
    help="Rows with a missing, NaN or infinite pred, target or weight: an error, left out, or let through as NaN.",
)
@click.option(
    "--id",
    "id_column",
    metavar="COL",
    shell_complete=_columns,
    help="Column carried into per-row output and worst rows.",
)
@click.option(
    "--group-by",
    "group_by",
    metavar="COL",
    shell_complete=_columns,
    help="A result per value of COL as well as overall.",
)
@click.option("--labels", metavar="FILE", shell_complete=_paths, help="Take the target column(s) from FILE ...")
@click.option("--on", metavar="KEY", shell_complete=_columns, help="... joined on column KEY (default: row by row).")
@click.option(
    "--top", type=click.IntRange(min=0), metavar="K", default=5, show_default=True, help="How many worst rows."
)
@click.option("--ci", type=float, metavar="LEVEL", help="Bootstrap confidence interval at LEVEL (e.g. 0.95).")
@click.option(
    "--bootstrap",
    type=click.IntRange(2, 2**18),  # the Options check, shown in --help
    metavar="N",
    default=1000,
    show_default=True,
    help="Bootstrap replicates.",
)
@click.option(
    "--seed",
    type=Seed(0, 2**64 - 1),
    metavar="S",
    default=0,
    show_default=True,
    help="Bootstrap seed (same seed, same interval).",
)
@click.option("--exact-quantiles", is_flag=True, help="Exact p50..p99 (memory grows with rows) instead of the sketch.")
@click.option(
    "--per-row",
    "per_row",
    metavar="FILE",
    shell_complete=_paths,
    help="Also write per-row losses: CSV, .parquet, or - for stdout.",
)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(choices.REPORT_FORMATS),
    default="auto",
    show_default=True,
    help="Report format; auto: a table on a terminal, JSON otherwise.",
)
@click.option(
    "-o", "--output", metavar="FILE", shell_complete=_paths, help="Also write the JSON report to FILE (atomically)."
)
@click.option(
    "--junit",
    metavar="FILE",
    shell_complete=_paths,
    help="Also write a JUnit XML report: a test case per gated result.",
)
@click.option(
    "--plot",
    metavar="FILE.svg",
    shell_complete=_paths,
    help="Also write an SVG of the loss distribution (and the baseline).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the value(s).")
@click.option("--fail-above", type=float, metavar="X", help="Exit 1 if a value exceeds X.")
@click.option(
    "--baseline",
    metavar="REPORT",
    shell_complete=_paths,
    help="Exit 1 if a value got worse than in this saved JSON report ...",
)
@click.option("--max-increase", metavar="X[%]", help="... by more than X (absolute) or X% (relative).  [default: 0]")
@click.option(
    "--backend",
    type=click.Choice(choices.BACKENDS),
    default="numpy",
    show_default=True,
    help="Array library for the arithmetic; cupy (a GPU) needs the gpu extra, auto takes it where it works.",
)
@click.option(
    "--engine",
    type=click.Choice(choices.ENGINES),
    default="local",
    show_default=True,
    help="Where pieces are reduced: this machine, or a Dask cluster (a local one, or --scheduler's).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Pieces reduced at once.  [default: the machine's cores]",
)
@click.option(
    "--scheduler",
    metavar="ADDR",
    help="A Dask scheduler to run on (with --engine dask).  [default: $DASK_SCHEDULER_ADDRESS, else a local cluster]",
)
@click.option(
    "--chunk-rows", type=click.IntRange(min=1), metavar="N", default=65_536, show_default=True, help="Rows per chunk."
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.  [default: on a terminal]")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
@click.pass_context
def eval_command(ctx: click.Context, /, inputs: tuple[str, ...], fmt: str, output: str | None, quiet: bool,
                 progress: bool | None, debug: bool, id_column: str | None, **options: Any) -> None:  # fmt: skip
    """Evaluate INPUT (files, or - for standard input) and print a report.

    \b
    Example:
      smoothl1 eval preds.csv --target y
      smoothl1 eval preds.parquet -t y -p model_a -p model_b --fail-above 0.3
    """
    ctx.meta["smoothl1.debug"] = debug
    for signum in TERMINATING:
        signal.signal(signum, _terminate)
    from dataclasses import replace

    from smoothl1_cli.engines.local import keep_freed_memory

    keep_freed_memory()  # this process only evaluates: its chunks reuse the memory freed by the last

    from smoothl1_cli.api import open_all, run
    from smoothl1_cli.options import Options
    from smoothl1_cli.output import atomic_output, refuse_overwriting
    from smoothl1_cli.readers import expand_inputs
    from smoothl1_cli.render import RENDERERS

    junit, plot = options.pop("junit"), options.pop("plot")
    if plot is not None:
        from smoothl1_cli.plot import check_path

        check_path(plot)
    settings = Options(id=id_column, **options)
    if settings.reduction == "none":
        if settings.per_row not in (None, "-"):
            raise InputError(
                "--reduction none streams per-row losses to stdout; drop --per-row, or use --reduction mean"
            )
        settings = replace(settings, per_row="-")
    if quiet and output is None and plot is None:  # only the values are shown: no quantiles, no worst rows
        settings = replace(settings, quantiles=False, top=0)
    per_row = settings.per_row
    if per_row == "-" and output is None and (quiet or fmt != "auto"):
        shown = "-q" if quiet else f"-f {fmt}"
        how, instead = (
            ("--reduction none", "") if settings.reduction == "none" else ("--per-row -", " (or --per-row FILE)")
        )
        raise InputError(
            f"{how} writes the per-row losses to stdout, so the report ({shown}) has no room there: "
            f"add -o FILE for the report{instead}"
        )
    files = expand_inputs(inputs)
    per_row_file = None if per_row == "-" else per_row  # only --per-row takes - for stdout
    outputs = {"-o": output, "--per-row": per_row_file, "--junit": junit, "--plot": plot}
    refuse_overwriting(outputs, files, settings.labels)
    sources = open_all(files, settings.input_format)
    with _progress_bar(sources, progress):
        report = run(sources, settings)
    for warning in report.warnings:
        click.echo(f"Warning: {printable(warning)}", err=True)
    renderer = "quiet" if quiet else _chosen(fmt)
    json_text = None
    if output is not None:
        text = io.StringIO()
        RENDERERS["json"](report, text)
        json_text = text.getvalue()
        with atomic_output(output, "-o") as file:
            file.write(json_text.encode())
    if junit is not None:
        from smoothl1_cli.junit import write_junit

        with atomic_output(junit, "--junit") as file:
            write_junit(report, file)
    if plot is not None:
        from smoothl1_cli.plot import svg

        with atomic_output(plot, "--plot") as file:
            file.write(svg(report))
    if per_row != "-":
        if renderer == "json" and json_text is not None:  # rendered once: a million groups take seconds
            sys.stdout.write(json_text)
        else:
            RENDERERS[renderer](report, sys.stdout)
        sys.stdout.flush()
    if not report.gate.passed:
        if per_row == "-" or quiet or fmt == "csv":  # these outputs have no room for the reasons
            _echo_failures(report.gate.failures)
        ctx.exit(ExitCode.GATE_FAILED)


@cli.command("compare", cls=SectionedCommand)
@click.argument("baseline", metavar="BASELINE.json", shell_complete=_paths)
@click.argument("current", metavar="CURRENT.json", shell_complete=_paths)
@click.option("--max-increase", metavar="X[%]", default="0", show_default=True, help="Allowed increase: X or X%.")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(choices.COMPARISON_FORMATS),
    default="auto",
    show_default=True,
    help="Report format; auto: a table on a terminal, JSON otherwise.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print no report: only the exit code and failures (on stderr).")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
@click.pass_context
def compare_command(
    ctx: click.Context, baseline: str, current: str, max_increase: str, fmt: str, quiet: bool, debug: bool
) -> None:
    """Compare two saved JSON reports: exit 1 if a result got worse by more than the allowed increase.

    \b
    Example:
      smoothl1 compare main.json current.json --max-increase 2%
    """
    ctx.meta["smoothl1.debug"] = debug
    from smoothl1_cli import gate
    from smoothl1_cli.render import COMPARISON_RENDERERS

    tolerance = gate.Tolerance.parse(max_increase)
    comparison = gate.compare(gate.load_report(baseline), gate.load_report(current), tolerance, baseline, current)
    if not quiet:
        COMPARISON_RENDERERS[_chosen(fmt)](comparison, sys.stdout)
        sys.stdout.flush()
    if not comparison.gate.passed:
        if quiet:
            _echo_failures(comparison.gate.failures)
        ctx.exit(ExitCode.GATE_FAILED)


def _echo_failures(failures: tuple[str, ...]) -> None:
    """A gate's failures on stderr, for outputs that have no room for them."""
    for failure in failures:
        click.echo(f"gate failed: {printable(failure)}", err=True)


@cli.command("schema")
def schema_command() -> None:
    """Print the JSON Schema (draft 2020-12) of the report that -f json and -o write."""
    from smoothl1_cli.schema import schema_text

    click.echo(schema_text(), nl=False)


def _chosen(fmt: str) -> str:
    """-f auto: a table for a person at a terminal, JSON for a pipe or a file."""
    return fmt if fmt != "auto" else ("table" if sys.stdout.isatty() else "json")


PROGRESS_MIN_BYTES = 64 << 20


@contextmanager
def _progress_bar(sources: list[Any], enabled: bool | None) -> Iterator[None]:
    """A rich progress bar on stderr while reading; by default only on a terminal and for large inputs.

    It counts what its total counts: rows where every input's footer says how many (Parquet, Arrow
    IPC files), else bytes on disk, with no total where the bytes read are not those (compressed
    text, standard input).
    """
    size = sum(source.size or 0 for source in sources)
    if enabled is None:
        enabled = sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    in_rows = all(source.rows is not None for source in sources)
    known = in_rows or all(
        source.size is not None and (source.rows is not None or not source.compressed) for source in sources
    )
    total = sum((source.rows if in_rows else source.size) or 0 for source in sources) if known else None
    counted = (MofNCompleteColumn(), TextColumn("rows")) if in_rows else (DownloadColumn(),)
    columns = (
        TextColumn("reading"),
        BarColumn(),
        *counted,
        TextColumn("{task.fields[rate]} rows/s"),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True, force_terminal=True)  # --progress asked for it, even into a pipe
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("reading", total=total, rate="?")
        read = [0]  # rows so far, for the rate

        def advance(done: int, rows: int) -> None:
            read[0] += rows
            elapsed = bar.tasks[0].elapsed
            bar.update(task, advance=done, rate=f"{read[0] / elapsed:,.0f}" if elapsed else "?")

        for source in sources:
            if in_rows:
                source.progress.append(lambda done: advance(done, done))
            elif source.rows is not None:  # next to text, a Parquet file's rows count as their share of its bytes
                share = (source.size or 0) / max(source.rows, 1)
                source.progress.append(lambda done, share=share: advance(round(done * share), done))
            else:
                source.progress.append(lambda done: advance(done, 0))
                source.rows_read.append(lambda rows: advance(0, rows))
        yield


def main() -> None:
    """The `smoothl1` entry point."""
    if sys.stdout is None:  # started with stdout closed (>&-): what would be printed goes nowhere
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the whole process)
    cli(prog_name="smoothl1")
