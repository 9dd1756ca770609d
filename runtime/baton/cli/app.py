"""The ``baton`` Typer app: its commands, and the mapping of every failure to one line
on stderr and an exit code from :class:`baton.core.status.ExitCode`.

Every listing is also available as ``--json``. ``baton step`` is not here: the console
script (:func:`baton.cli.main`) hands it to :mod:`baton.step.entry` before this loads.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

import typer

import baton.cli.cluster as cluster
import baton.cli.control as control
import baton.cli.listings as listings
import baton.cli.logs as logs
import baton.cli.purge as purge
import baton.cli.run as run
import baton.cli.schedule as schedule
import baton.cli.validate as validate
from baton.cli.session import session
from baton.core.errors import BatonError
from baton.core.logformat import configure_logging
from baton.core.status import ExitCode
from baton.repository.engine import redact

try:  # Typer >= 0.25 vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on the real click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore

app = typer.Typer(
    name="baton",
    help="Run batch jobs with checkpoints and restarts, locally or on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.callback()(logs.global_options)  # --log-format, --log-dir
# In the order `baton --help` lists them.
app.command()(run.run)
app.command("start-next")(run.start_next)
app.command()(run.restart)
app.command()(control.stop)
app.command()(control.abandon)
app.command()(control.recover)
app.command("start")(cluster.start)
app.command()(validate.validate)
app.command()(listings.jobs)
app.command()(listings.instances)
app.command()(listings.executions)
app.command()(listings.show)
app.command()(listings.skips)
app.command()(listings.results)
app.command()(listings.history)
app.command()(listings.steps)
app.command("purge")(purge.purge_command)
app.command()(logs.logs)
app.add_typer(schedule.app, name="schedule")
app.command()(schedule.backfill)


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return its exit code. Every error is one line on
    stderr: ``error: <what>: <why>`` with its exit code; usage errors exit 2; anything
    unexpected is ``error: internal error: ...`` with exit 1 (BATON_DEBUG=1 re-raises it
    for the traceback)."""
    session.begin()
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = command.main(args=args, prog_name="baton", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except NoArgsIsHelpError as e:  # bare `baton`: the help (Rich has printed it)
        if e.format_message().strip():
            e.show()
        return int(ExitCode.USAGE)
    except ClickException as e:
        where = e.ctx.command_path if isinstance(e, UsageError) and e.ctx else "baton"
        hint = f" (see '{where} --help')" if isinstance(e, UsageError) else ""
        return _fail(f"{where}: {e.format_message()}{hint}", e.exit_code)
    except BatonError as e:
        return _fail(str(e), e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        return _fail("interrupted", ExitCode.STOPPED)
    except BrokenPipeError:  # `baton executions | head`: the reader left; no traceback
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - outlives this frame on purpose
        return int(ExitCode.FAILED)
    except Exception as e:
        if os.environ.get("BATON_DEBUG"):
            raise
        return _fail(
            f"internal error: {type(e).__name__}: {e} (BATON_DEBUG=1 shows the traceback)",
            ExitCode.FAILED,
        )
    finally:
        session.end()


def _fail(message: str, code: int) -> int:
    """Write ``error: message`` as exactly one line, whatever the message holds (and
    never a password: an unexpected error may quote a database URL)."""
    line = redact(re.sub(r"\s*[\r\n]+\s*", " ", message).strip())
    line = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()
    return int(code)


def main() -> None:
    configure_logging("text")  # --log-format json switches it
    sys.exit(run_cli())
