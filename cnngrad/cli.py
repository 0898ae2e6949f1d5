"""The ``cnngrad`` command line: parse options, load specs, run them, pick a renderer, set the exit code.

Exit codes (docs/reference.md §7): 0 success, 1 ``check`` found something that did not pass, 2 could not run
(cnngrad.process: Ctrl-C and a closed pipe end the process by their signals).
numpy, yaml and rich are imported inside the commands, so ``--help`` and ``--version`` start fast.
"""
from __future__ import annotations

import errno
import functools
import importlib
import math
import os
import signal
import sys
import threading

import click

from . import __version__

FORMATS = {"table": "table", "json": "jsondoc", "markdown": "markdown", "latex": "latex", "svg": "svg",
           "html": "html"}
CHECK_FORMATS = {**FORMATS, "github": "github"}   # github: workflow annotations, check only
SPEC_SUFFIXES = (".yaml", ".yml")
SPEC_BEING_READ = "cnngrad.spec"   # ctx.meta key: the spec an error while processing it names
LARGEST_LIMIT = 10**15             # --max-entries / --max-file-size: beyond any machine, within 64 bits


class CannotRun(click.ClickException):
    """The command could not run: one ``error: …`` line on stderr (then its details, indented)
    and exit 2."""

    exit_code = 2

    def __init__(self, message: str, details: tuple[str, ...] = ()):
        super().__init__(message)
        self.details = details

    def show(self, file=None):
        _echo_error(self.format_message(), self.details)


def _echo_error(message: str, details: tuple[str, ...] = ()) -> None:
    """``error: MESSAGE`` on stderr, and under it each line of ``details`` indented (a shape
    error's table of the shapes so far); control characters escaped (it may quote a spec or path)."""
    from .text import printable
    click.echo("\n".join([f"error: {printable(message)}", *(f"  {printable(line)}" for line in details)]),
               file=sys.stderr)


class _Command(click.Command):
    """A subcommand whose --help text, if it cannot be written, is one error line."""

    def make_context(self, info_name, args, parent=None, **extra):
        return _parsed(super().make_context, info_name, args, parent=parent, **extra)


class _Group(click.Group):
    """Turns any error escaping a command into one ``error:`` line (or, with --debug, a traceback),
    click's usage errors included; ``--debug`` may be written anywhere on the line."""

    command_class = _Command

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, _debug_first(args))

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return _parsed(super().make_context, info_name, args, parent=parent, **extra)
        except click.UsageError as err:
            raise _usage_error(err) from None

    def resolve_command(self, ctx, args):
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            from .spec.nodes import suggest
            commands = self.list_commands(ctx)
            raise click.UsageError(f"no such command {args[0]!r}{suggest(args[0], commands)} "
                                   f"(commands: {', '.join(commands)})", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            raise _usage_error(err) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            if isinstance(err, OSError) and err.errno == errno.EPIPE:
                raise                      # the reader went away: main() ends quietly
            raise CannotRun(_describe(ctx, err), getattr(err, "details", ())) from err


def _parsed(make_context, *args, **extra):
    """``make_context(*args)``, which parses the arguments and may print --help or --version: a
    write there that fails (a full disk) is one error line."""
    try:
        return make_context(*args, **extra)
    except OSError as err:
        if err.errno == errno.EPIPE:
            raise
        raise _output_failed(err) from None


def _debug_first(args):
    """The arguments with every ``--debug`` before a ``--`` moved to the front, where the group
    reads it: ``cnngrad check x.yaml --debug`` means ``cnngrad --debug check x.yaml``."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[:end]:
        return args
    return ["--debug"] + [arg for i, arg in enumerate(args) if i >= end or arg != "--debug"]


def _usage_error(err: click.UsageError) -> click.ClickException:
    """Click's usage error (a 4-line block) as one line: the command, what is wrong, where to look.
    Asking for help with no arguments (bare ``cnngrad``) keeps click's help text."""
    if isinstance(err, getattr(click.exceptions, "NoArgsIsHelpError", ())):   # click 8.2 and later
        return err
    where = err.ctx.command_path if err.ctx is not None else "cnngrad"
    if isinstance(err, click.NoSuchOption):
        message = f"no such option {err.option_name}"
        if err.possibilities:
            message += f" (did you mean {' or '.join(sorted(err.possibilities))}?)"
    else:
        message = err.format_message().rstrip(".")
        message = message[:1].lower() + message[1:]
    return CannotRun(f"{where}: {message}; see '{where} --help'")


def _describe(ctx: click.Context, err: Exception, spec: str | None = None) -> str:
    """The one-line message for ``err``, naming the spec being processed (``spec``, else the one
    ``_load`` last read); with --debug its traceback is printed first."""
    if ctx.find_root().params.get("debug"):
        import traceback
        traceback.print_exception(type(err), err, err.__traceback__)
    from .gradcheck import TooMuchWork, UnknownQuantity
    from .model import NonFiniteError
    from .spec import SpecError
    from .spec.source import display_name
    if isinstance(err, SpecError) and err.file:
        return str(err)                    # names its own file (the spec, or a file it reads)
    if isinstance(err, (SpecError, UnknownQuantity, NonFiniteError, TooMuchWork)):
        message = str(err)
    elif isinstance(err, OSError) and err.filename is not None:
        return f"{display_name(err.filename)}: {err.strerror}"     # names its own file
    else:
        message = f"internal error: {type(err).__name__}: {err} (run with --debug for the traceback)"
    spec = display_name(spec) if spec is not None else ctx.meta.get(SPEC_BEING_READ)
    return message if spec is None or message.startswith(f"{spec}:") else f"{spec}: {message}"


def _format_option(command):
    return click.option(
        "--format", "fmt", type=click.Choice(list(FORMATS)), default="table", show_default=True,
        help="table for people (colour on a terminal); json (docs/reference.md §6; NaN and ±inf as null); "
             "markdown or latex to paste into notes; svg (a picture: heatmaps, the network as "
             "boxes) or html (a self-contained page of heatmap tables).")(command)


def _precision_option(command):
    return click.option(
        "--precision", type=click.IntRange(0, 17), default=6, show_default=True,
        help="Decimals shown in grids (json always has full precision).")(command)


class _Size(click.ParamType):
    """A size in bytes as people write it: 4G, 512M, 1.5GiB or a number of bytes."""

    name = "size"

    def convert(self, value, param, ctx):
        from .spec.limits import parse_size
        try:
            return value if isinstance(value, int) else parse_size(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


def _full_option(command):
    return click.option(
        "--full", is_flag=True,
        help="Print every grid whole in the table format. Without it, a grid larger than the "
             "terminal (or, piped, one of more than 10,000 entries) shows its first and last rows "
             "and columns with … between.")(command)


def _limits_options(command):
    """--max-entries, --max-file-size, --max-yaml-nodes and --max-memory, collected into the
    command's ``limits`` argument (a ``spec.Limits``) for ``_load`` (the defaults stop hostile
    files, these raise them for a genuinely large network)."""
    @functools.wraps(command)
    def with_limits(*args, max_entries, max_file_size, max_yaml_nodes, max_memory, **kwargs):
        return command(*args, limits=_limits(max_entries, max_file_size, max_yaml_nodes, max_memory), **kwargs)
    options = click.option(
        "--max-memory", type=_Size(), metavar="SIZE",
        help="Most memory a forward and backward pass may need, estimated from the shapes before "
             "it runs (4G, 512M, …).  [default: 2G]")(with_limits)
    options = click.option(
        "--max-yaml-nodes", type=click.IntRange(1, 1 << 40), metavar="N",
        help="Most YAML nodes in a spec, counting each alias as a copy of what it refers to.  "
             "[default: 1000000]")(options)
    options = click.option(
        "--max-file-size", type=click.IntRange(1, 1 << 40), metavar="BYTES",
        help="Largest spec file read.  [default: 1048576]")(options)
    return click.option(
        "--max-entries", type=click.IntRange(1, LARGEST_LIMIT), metavar="N",
        help="Most entries in one array (a value, a random shape, a layer's output); all values "
             "together may hold 4·N, and a value file 32·N bytes (at least 64 MiB).  "
             "[default: 5000000]")(options)


def _allow_dir_option(command):
    """--allow-dir: a folder, besides the spec's own, that {file: ...} values may be read from
    (the command's ``allow_dirs`` argument)."""
    return click.option(
        "--allow-dir", "allow_dirs", multiple=True, metavar="DIR",
        type=click.Path(exists=True, file_okay=False),
        help="Also read {file: ...} values from DIR (by default only from the spec's folder and "
             "below); repeatable.")(command)


def _number(what: str, low: float = -math.inf, high: float = math.inf, low_open: bool = False):
    """A callback for a float option: a finite number in [low, high) ((low, high) with
    ``low_open``), else one ``error:`` line and exit 2 (click's FloatRange lets nan and inf in)."""
    def check(ctx, param, value):
        if value is not None and not (math.isfinite(value) and (low < value if low_open else low <= value)
                                      and value < high):
            raise CannotRun(f"{param.opts[0]} {value:g}: {what}")
        return value
    return check


def _limits(max_entries: int | None, max_file_size: int | None, max_yaml_nodes: int | None,
            max_memory: int | None):
    """The spec limits the command line asked for (the defaults where an option is not given)."""
    from .spec import Limits
    defaults, changes = Limits(), {}
    if max_entries is not None:
        changes.update(max_entries=max_entries, max_total_entries=4 * max_entries,
                       max_data_file_bytes=max(defaults.max_data_file_bytes, 32 * max_entries))
    if max_memory is not None:
        changes.update(max_memory_bytes=max_memory)
    if max_file_size is not None:
        changes.update(max_file_bytes=max_file_size)
    if max_yaml_nodes is not None:
        changes.update(max_nodes=max_yaml_nodes)
    return Limits(**changes)


def _renderer(fmt: str):
    """The module that renders ``fmt`` (``CHECK_FORMATS``), imported only now: rich, which only
    the table format needs, is most of a start-up."""
    return importlib.import_module(f".render.{CHECK_FORMATS[fmt]}", __package__)


def _emit(text: str) -> None:
    """Print rendered text. ``color=True`` keeps whatever colour codes rich chose to write: rich
    already decided from the terminal, NO_COLOR and FORCE_COLOR, and click would otherwise strip
    them from a pipe."""
    _echo(text, nl=False, color=True)


def _echo(text: str, **options) -> None:
    """``click.echo`` to standard output; a write that fails (a full disk) is one error line."""
    try:
        click.echo(text, file=sys.stdout, **options)   # as given: click would write UTF-8 to ASCII
    except OSError as err:
        if err.errno == errno.EPIPE:
            raise
        raise _output_failed(err) from None


def _output_failed(err: OSError) -> CannotRun:
    return CannotRun(f"cannot write to standard output: {err.strerror or err}")


def _load(source: str, limits, allow_dirs: tuple[str, ...]):
    """Load a spec within ``limits``, reading value files from its folder and ``allow_dirs``; the
    command line, a short-lived process, also keeps freed memory for reuse (cnngrad.memory: half
    the time of a pass was fresh pages)."""
    from .memory import keep_freed_memory
    from .spec import load_model
    from .spec.source import display_name
    click.get_current_context().meta[SPEC_BEING_READ] = display_name(source)
    keep_freed_memory()
    return load_model(source, limits=limits, allow_dirs=allow_dirs)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnngrad")
@click.option("--debug", is_flag=True, help="Show a Python traceback instead of the one-line error.")
def cli(debug: bool) -> None:
    """Gradient calculator and verifier for small convolutional networks.

    SPEC is a YAML file describing a network, one example and (for backward, check and explain)
    a loss, or - for standard input. The reference is docs/reference.md in the repository.
    Exit codes: 0 success, 1 check found something that did not pass, 2 could not run; Ctrl-C
    and a closed pipe end it by SIGINT (130 in a shell) and SIGPIPE (141).
    """


@cli.command()
@click.argument("spec")
@_format_option
@_precision_option
@_full_option
@_limits_options
@_allow_dir_option
def forward(spec: str, fmt: str, precision: int, full: bool, limits, allow_dirs) -> None:
    """Print each layer's output, the final output and the loss (if the spec gives one).

    A summary table (layer, kind, output shape, parameter count, and the rows or columns a
    window never reads) comes first; a 3-D stack is shown one channel at a time.
    """
    from .render.reports import forward_report
    model = _load(spec, limits, allow_dirs)
    _emit(_renderer(fmt).forward(forward_report(model, model.values(gradients=False)), precision, full))


@cli.command()
@click.argument("spec")
@_format_option
@_precision_option
@click.option("--lr", type=float, metavar="ETA", callback=_number("the learning rate must be a finite number"),
              help="Also print each parameter's update θ − ETA·∂E/∂θ (one SGD step).")
@_full_option
@_limits_options
@_allow_dir_option
def backward(spec: str, fmt: str, precision: int, lr: float | None, full: bool, limits, allow_dirs) -> None:
    """Print ∂E/∂ each layer's output and parameter, loss to input.

    Titles are the quantity names of the spec: grad.conv1 is ∂E/∂(output of conv1),
    grad.conv1.kernel is ∂E/∂(its kernel), grad.input is ∂E/∂input.
    """
    import numpy as np
    from . import quantities
    from .render.reports import backward_report
    model = _load(spec, limits, allow_dirs)
    values = model.values()
    with np.errstate(over="ignore", invalid="ignore"):    # an overflow is the error below
        updates = {} if lr is None else {p: values[p] - lr * values[quantities.gradient_of(p)] for p in model.params}
    for name, updated in updates.items():
        if not np.isfinite(updated).all():
            raise CannotRun(f"{model.path}: --lr {lr:g}: the update of {name} overflows float64; "
                            f"give a smaller --lr")
    _emit(_renderer(fmt).backward(backward_report(model, values, lr, updates), precision, full))


@cli.command()
@click.argument("spec")
@click.argument("quantity")
@_format_option
@_precision_option
@_limits_options
@_allow_dir_option
def explain(spec: str, quantity: str, fmt: str, precision: int, limits, allow_dirs) -> None:
    """Explain one gradient entry: the chain rule one step, with the numbers.

    QUANTITY is one entry, e.g. grad.conv1.kernel[0,1], grad.pool1[1,0] or grad.input[2,3]:
    its formula in terms of the layer after it (or the loss), the same sum with the actual
    numbers (terms that are 0 counted, not listed) and its value.
    """
    from .explain import CannotExplain, explain as explain_entry
    model = _load(spec, limits, allow_dirs)
    try:
        explained = explain_entry(model, quantity)
    except CannotExplain as err:
        raise CannotRun(f"{model.path}: {err}") from err
    _emit(_renderer(fmt).explain(explained, precision))


@cli.command()
def schema() -> None:
    """Print a JSON Schema (draft 2020-12) of the spec format.

    For an editor's YAML language server, e.g. a first line
    `# yaml-language-server: $schema=cnngrad.schema.json` after `cnngrad schema > cnngrad.schema.json`.
    """
    import json
    from .spec.schema import spec_schema
    _echo(json.dumps(spec_schema(), indent=2, ensure_ascii=False))


@cli.command()
@click.argument("path", required=False)
def init(path: str | None) -> None:
    """Write a commented starter spec to PATH (never over an existing file), or to standard output."""
    from .spec.starter import STARTER
    if path is None or path == "-":
        _echo(STARTER, nl=False)
        return
    if os.path.isdir(path):
        raise CannotRun(f"{path}: is a folder; give the new file's name, e.g. "
                        f"cnngrad init {os.path.join(path, 'net.yaml')}")
    try:
        with open(path, "x", encoding="utf-8") as file:
            file.write(STARTER)
    except FileExistsError:
        raise CannotRun(f"{path}: already exists; init does not overwrite a file") from None
    from .text import printable
    click.echo(printable(f"wrote {path}; next: cnngrad check {path}"), file=sys.stderr)


@cli.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@click.option("--eps", type=float, metavar="H",
              callback=_number("the step must be a number between 0 and 1, e.g. 1e-4", 0, 1, low_open=True),
              help="Finite-difference step, relative to each entry's size.  [default: 1e-4]")
@click.option("--rtol", type=float, metavar="R", callback=_number("must be a finite number ≥ 0, e.g. 1e-7", 0),
              help="Relative tolerance.  [default: 1e-7]")
@click.option("--atol", type=float, metavar="A", callback=_number("must be a finite number ≥ 0, e.g. 1e-10", 0),
              help="Absolute tolerance.  [default: 1e-10]")
@click.option("--wrt", multiple=True, metavar="NAME",
              help="Check only this gradient (input, conv1, conv1.kernel, …); repeatable.")
@click.option("--fast", is_flag=True, help="Check random directional derivatives instead of every entry.")
@click.option("--deltas", is_flag=True, help="Also check each layer's backward on its own, naming a faulty layer.")
@click.option("--against", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also verify your own values of many quantities: a .npz (keys are quantity names), "
                   ".json (names to nested lists; backward --format json's output too) or .yaml like expect:.")
@click.option("--against-rtol", type=float, metavar="R", callback=_number("must be a finite number ≥ 0", 0),
              help="Relative tolerance for values from code (--against, {file: ...}).  [default: 1e-7]")
@click.option("--against-atol", type=float, metavar="A", callback=_number("must be a finite number ≥ 0", 0),
              help="Absolute tolerance for values from code, times the quantity's largest |entry| if above 1.  "
                   "[default: 1e-10]")
@click.option("--max-work", type=float, metavar="N", callback=_number("must be a number ≥ 1, e.g. 1e12", 1),
              help="Refuse a check estimated to take more than N multiply-adds.  [default: 2e11, ~100 s]")
@click.option(
    "--format", "fmt", type=click.Choice(list(CHECK_FORMATS)), default=None,
    help="table for people (colour on a terminal); json (NaN and ±inf as null); markdown or latex "
         "to paste into notes; svg or html (pictures); github: GitHub Actions annotations.  "
         "[default: github when GITHUB_ACTIONS=true, else table]")
@click.option("--junit-xml", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Also write the results as JUnit XML to FILE, for CI test reports.")
@click.option("--update-expect", is_flag=True,
              help="Rewrite the expect: numbers that fail with the computed values (as many "
                   "decimals as written; comments and layout kept), then check.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), metavar="N",
              help="Check up to N spec files at once, each in its own process (output in the same "
                   "order; no progress bars).  [default: the number of cores]")
@_limits_options
@_allow_dir_option
@click.pass_context
def check(ctx: click.Context, specs, eps, rtol, atol, wrt, fast, deltas, against, against_rtol,
          against_atol, max_work, fmt, junit_xml, update_expect, jobs, limits, allow_dirs) -> None:
    """Check analytic gradients against finite differences and expect.

    Every analytic gradient (or those named by --wrt) is compared entry by entry with
    Richardson-extrapolated central differences, and the spec's expect: values are verified.
    SPEC may be a file or a folder (every *.yaml and *.yml below it). Exit 0 when everything
    passed, 1 when something failed or was too coarsely resolved to verify (unverified), 2 when a
    spec could not be run (a check estimated beyond --max-work among them). Values from code
    (--against FILE, expect values {file: ...}) are held to --against-rtol and --against-atol;
    float32 code needs about --against-rtol 1e-4 --against-atol 1e-6.
    """
    _refuse_check_arguments(specs, against, update_expect)
    fmt = fmt or _default_check_format()
    load = _updated if update_expect else _load
    options = dict(eps=eps, rtol=rtol, atol=atol, wrt=wrt, fast=fast, deltas=deltas, max_work=max_work)

    def model_of(path: str):
        """The spec at ``path`` loaded (updated first with --update-expect), with its values from code."""
        return _with_code_values(load(path, limits, allow_dirs), against, against_rtol, against_atol, limits)

    def check_one(found):
        path, problem = found
        return _check_spec(ctx, path, model_of, options) if problem is None else _failed_spec(path, problem, ())

    stream = fmt == "table"     # spec by spec, so an error line on stderr sits where its spec is
    results = []
    for result in _checked(check_one, list(_spec_files(specs)), jobs):
        if stream:
            _emit(_renderer(fmt).check_spec(result))
        # printed: the total needs no entries (JUnit XML lists the failing ones)
        results.append(result.without_entries() if stream and not junit_xml else result)
    renderer = _renderer(fmt)
    if stream:
        _emit(renderer.check_total(results))
    else:   # JSON in pieces as they are made (a million entries are 165 MB of text)
        for piece in getattr(renderer, "check_pieces", lambda done: [renderer.check(done)])(results):
            _emit(piece)
    if junit_xml:
        from .render.junit import write
        write(junit_xml, results)
    ctx.exit(_check_exit_code(results))


def _checked(check_one, found: list, jobs: int | None):
    """``check_one`` of each spec found, in order: side by side in up to ``jobs`` processes
    (``cnngrad.jobs``; by default one per core) when there is more than one spec, else here."""
    if len(found) < 2 or jobs == 1:       # (multiprocessing costs a start-up 5-20 ms to import)
        return map(check_one, found)
    from .jobs import can_fork, cores, in_order
    jobs = cores() if jobs is None else jobs
    if jobs < 2 or not can_fork():
        return map(check_one, found)
    return in_order(check_one, found, jobs)


def _refuse_check_arguments(specs, against: str | None, update_expect: bool) -> None:
    """Refuse option combinations check cannot honour: --against with other than one spec file,
    --update-expect on standard input."""
    if against is not None and (len(specs) != 1 or os.path.isdir(specs[0])):
        raise CannotRun("--against FILE holds the values of one spec: give exactly one SPEC file")
    if update_expect:
        from .spec.update import refuse_stdin
        refuse_stdin(specs)


def _default_check_format() -> str:
    """github (annotations) inside GitHub Actions, else table."""
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "table"


def _check_exit_code(results) -> int:
    """2 when a spec could not run, else 0 when everything passed, else 1."""
    if any(r.error for r in results):
        return 2
    return 0 if all(r.passed for r in results) else 1


def _check_spec(ctx: click.Context, path: str, model_of, options: dict):
    """The result of checking one spec file, loaded by ``model_of(path)``; a spec that cannot run
    (bad input, too much work) is reported on stderr and gives a failed result with its error."""
    from .gradcheck import check_model
    from .gradcheck.work import long_check_note
    from .render.progress import DelayedProgress
    progress = DelayedProgress.for_terminal(f"checking {path}")
    try:
        model = model_of(path)
        note = long_check_note(model, options["wrt"], options["fast"], options["deltas"], options["max_work"])
        if progress is None and note:      # no bar on stderr to show that it is working
            click.echo(note, file=sys.stderr)
        return check_model(model, progress=progress, **options)
    except Exception as err:   # this spec could not run: say so and go on with the others
        problem, details = _describe(ctx, err, spec=path), getattr(err, "details", ())
    finally:
        if progress is not None:
            progress.close()
    return _failed_spec(path, problem, details)


def _failed_spec(path: str, problem: str, details) -> "SpecResult":
    """Report why ``path`` could not be checked on stderr, and its failed result carrying that error."""
    from .gradcheck.results import SpecResult
    from .spec.source import display_name
    _echo_error(problem, details)
    return SpecResult(spec=display_name(path), name=None, passed=False, error=problem)


def _with_code_values(model, against: str | None, rtol: float | None, atol: float | None, limits):
    """The model with the values of ``--against`` added to its expectations, and every value
    from code held to the tolerance asked for."""
    from .model import CODE_TOLERANCE
    code = (CODE_TOLERANCE[0] if rtol is None else rtol, CODE_TOLERANCE[1] if atol is None else atol)
    if against is not None:
        from .spec.against import read_against
        model.expect += read_against(against, model, code, limits)
    for expectation in model.expect:
        if expectation.code is not None:
            expectation.code = code
    return model


def _updated(path: str, limits, allow_dirs: tuple[str, ...]):
    """``--update-expect``: rewrite the spec's failing expect numbers, then load it again."""
    from .spec.source import display_name
    from .spec.update import update_expect
    model = _load(path, limits, allow_dirs)
    changed = update_expect(path, model, limits)
    if not changed:
        return model
    click.echo(f"updated {display_name(path)}: {changed} expect number{'s' if changed != 1 else ''}", file=sys.stderr)
    return _load(path, limits, allow_dirs)


def _spec_files(sources):
    """``(path, problem)`` for each spec to check: a folder gives every *.yaml / *.yml below it,
    ordered by path component (symlinked folders are not followed); ``problem`` says why a
    source gives nothing to check: an empty folder, or a sub-folder that cannot be read."""
    for source in sources:
        if source == "-" or not os.path.isdir(source):
            yield source, None
        else:
            yield from _folder_specs(source)


def _folder_specs(folder: str):
    """``(path, problem)`` for the specs below ``folder``, ordered by path component; a sub-folder
    that cannot be read, or a folder with no spec at all, gives a problem instead."""
    from .spec.source import display_name
    unreadable = []
    paths = [os.path.join(top, name)
             for top, _, names in os.walk(folder, onerror=unreadable.append) for name in names
             if os.path.splitext(name)[1] in SPEC_SUFFIXES]
    found = [(path, None) for path in paths if os.path.isfile(path)]
    found += [(err.filename, f"{display_name(err.filename)}: cannot read this folder ({err.strerror}); "
                             "the specs in it were not checked") for err in unreadable]
    if not found:
        yield folder, f"{display_name(folder)}: no *.yaml or *.yml files in this folder"
    yield from sorted(found, key=lambda item: item[0].split(os.sep))


def main(argv=None) -> None:
    """The ``cnngrad`` entry point.

    Run as the program (``argv`` None), it sets up the process (cnngrad.process: Ctrl-C, closed
    pipes, encodings), needs an open standard output, and ends the process as soon as the output
    is flushed: tearing down the interpreter (numpy, yaml, click and our modules) costs a small
    check ~15 ms of its ~200 ms, and nothing is left to clean up. Called with ``argv`` it
    returns, or raises ``SystemExit``, as click does. Either way BLAS gets the checker's thread
    count if numpy is not loaded yet (cnngrad.threads).
    """
    from .threads import before_numpy
    before_numpy()
    if argv is not None:
        return cli.main(args=argv, prog_name="cnngrad")
    from .process import prepare
    prepare()
    code = _run_program()
    signal.signal(signal.SIGINT, signal.SIG_DFL)   # from here, Ctrl-C ends the process at once
    if code is None:
        code = 0
    if not isinstance(code, int) or threading.active_count() > 1:
        raise SystemExit(code)             # Python's own exit: a message code, or a thread to wait for
    os._exit(_flush_output(code))


def _run_program():
    """Run the command line and give its exit code (click's ``SystemExit`` code; 0 when it
    returns); a closed standard output is refused, Ctrl-C ends the process as by SIGINT."""
    from .process import Interrupted, end_by_signal, error_line
    if sys.stdout is None:
        return error_line("standard output is closed; send it somewhere, e.g. > out.txt or > /dev/null")
    try:
        cli.main(prog_name="cnngrad")
        return 0
    except SystemExit as done:
        return done.code
    except Interrupted:
        error_line("interrupted")
        end_by_signal(signal.SIGINT)


def _flush_output(code: int) -> int:
    """Flush stdout and stderr before the process ends; the exit code, 2 with an error line when
    the last of the output could not be written (unless the run already failed with 2)."""
    from .process import error_line
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as err:                 # the last of the output was not written
        if code != 2:
            code = error_line(f"cannot write to standard output: {err.strerror or err}")
    if sys.stderr is not None:
        try:
            sys.stderr.flush()
        except OSError:
            pass
    return code
