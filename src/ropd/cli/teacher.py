"""`ropd teacher build | stats | export | import`: the offline teacher store from the shell.

A build holds the store's lock (`ropd.io.lock`) for its whole duration, so a second build into
the same store refuses at once instead of paying for the same answers twice. Progress goes to
stderr (`ropd.cli.progress`); Ctrl-C ends with what is saved and the command that continues
(the same command: builds resume on their own), exit 130.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ropd.cli.options import (
    MaxInFlight,
    MaxRetries,
    NoProbe,
    Rpm,
    Tpm,
    field_help,
    limits_from_flags,
    role_from_flags,
)
from ropd.cli.progress import RunProgress, resume_command
from ropd.cli.run_options import LIMIT_FIELDS, ConfigFile, Sets, judge_fields, run_config
from ropd.data.records import load_records
from ropd.errors import InputError, Interrupted
from ropd.llm.config import RoleConfig
from ropd.run_config import RunConfig
from ropd.teacher.builder import (
    PROGRESS_LABEL,
    PROGRESS_UNIT,
    BuildAborted,
    ReportProgress,
    build_store,
    prompt_items,
)
from ropd.teacher.config import TeacherConfig
from ropd.teacher.status import STATUSES
from ropd.teacher.store import TeacherStore

# -k means K, teacher answers per prompt, in every command (`ropd score -k` too).
K_FLAGS = ("-k", "--num-teacher-refs")
K_BUILD_HELP = "K: teacher answers per prompt; the build makes sure each prompt has K usable ones."
K_STATS_HELP = "K: teacher answers per prompt; also count prompts with at least K ok answers."
USE_N_HELP = (
    "Ask for all missing answers of a prompt in one request (the API's n parameter) instead of "
    "one request per answer. Default: on for --base-url endpoints, off for the embedded model."
)

teacher_app = typer.Typer(
    help="Offline teacher references: build, inspect, export and import the store.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add `ropd teacher ...` to the top-level app."""
    app.add_typer(teacher_app, name="teacher")


def _fail(message: str) -> InputError:
    """A bad option or input (printed and mapped to exit 2 by `ropd.cli.errors`)."""
    return InputError(message)


def teacher_role(
    *,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    temperature: float,
    top_p: float | None,
    max_tokens: int,
    timeout_s: float,
) -> RoleConfig:
    """The teacher role from the command-line flags; checks the key variable up front."""
    role = role_from_flags(
        "teacher",
        base_url,
        model,
        api_key_env,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        timeout_s=timeout_s,
    )
    role.check_api_key()  # before the data is read: the value is not kept
    return role


# Each flag is one field of the run configuration (`-c ropd.yaml` and `--set` read the same).
BUILD_FIELDS = {
    **{name: path.replace("scorer.judge", "teacher.role") for name, path in
       judge_fields("scorer.judge").items() if name not in ("context_window", "tokenizer", "price")},
    "top_p": "teacher.role.top_p",
    "k": "teacher.num_answers",
    "store": "teacher.store",
    **LIMIT_FIELDS,
}  # fmt: skip


@teacher_app.command("build")
def build(
    ctx: typer.Context,
    data: Annotated[
        str,
        typer.Argument(
            help="Prompts: a JSONL/JSON/Parquet/CSV file or a Hugging Face dataset id.",
            show_default=False,
        ),
    ],
    store: Annotated[
        Path | None,
        typer.Option(
            help="Teacher store (SQLite file, created if missing; or ropd.teacher.store)."
        ),
    ] = None,
    k: Annotated[int, typer.Option(*K_FLAGS, help=K_BUILD_HELP)] = 4,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="OpenAI-compatible endpoint of the teacher; none = embedded local model."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Teacher model name at --base-url.")] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help=field_help(RoleConfig, "api_key_env")),
    ] = None,
    temperature: Annotated[float, typer.Option(help="Teacher sampling temperature.")] = 1.0,
    top_p: Annotated[float | None, typer.Option(help="Teacher nucleus sampling.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Answer budget in tokens.")] = 1024,
    timeout: Annotated[
        float, typer.Option("--timeout", "--timeout-s", help=field_help(RoleConfig, "timeout_s"))
    ] = 300.0,
    max_in_flight: MaxInFlight = 16,
    rpm: Rpm = None,
    tpm: Tpm = None,
    max_retries: MaxRetries = 4,
    use_n: Annotated[
        bool | None,
        typer.Option("--use-n/--no-use-n", help=USE_N_HELP, show_default=False),
    ] = None,
    old_n: Annotated[  # the former spelling, kept working
        bool | None, typer.Option("--n/--no-n", hidden=True, show_default=False)
    ] = None,
    prompt_field: Annotated[
        str, typer.Option(help="Field with the prompt (string or chat messages).")
    ] = "prompt",
    system_prompt: Annotated[
        str | None, typer.Option(help="System prompt put before every prompt.")
    ] = None,
    system_field: Annotated[
        str | None, typer.Option(help="Field with a per-row system prompt (wins when set).")
    ] = None,
    id_field: Annotated[
        str, typer.Option(help="Field with the row id (kept with answers).")
    ] = "id",
    split: Annotated[str | None, typer.Option(help="Split of a Hugging Face dataset.")] = None,
    name: Annotated[str | None, typer.Option(help="Config name of a Hugging Face dataset.")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N rows.")] = None,
    accept: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Also count answers with this status as usable ({', '.join(STATUSES)})."
        ),
    ] = None,
    max_pending: Annotated[int, typer.Option(help="Prompts being worked on at once.")] = 64,
    max_rounds: Annotated[
        int, typer.Option(help="Requests rounds per prompt in this run (tops up unusable answers).")
    ] = 3,
    progress: Annotated[
        bool,
        typer.Option(
            help="Show progress on stderr: a bar on a terminal, else a line every "
            "ROPD_PROGRESS_EVERY seconds (default 30)."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")] = False,
    no_probe: NoProbe = False,
    config_file: ConfigFile = None,
    sets: Sets = None,
) -> None:
    """Ask the teacher for K answers per prompt; run again to resume or top up.

    With `-c ropd.yaml` the teacher, its store, K (`teacher.num_answers`) and the limits come
    from the file's `ropd:` section (`--set` and the flags given override it).
    """
    usable = {"ok", *(accept or [])}
    unknown = usable - set(STATUSES)
    if unknown:
        raise _fail(f"--accept must be one of {list(STATUSES)}, got {sorted(unknown)}")
    role = teacher_role(
        base_url=base_url,
        model=model,
        api_key_env=api_key_env,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        timeout_s=timeout,
    )
    limits = limits_from_flags(max_in_flight, rpm, tpm, max_retries)
    flagged = RunConfig(
        teacher=TeacherConfig(store=store, role=role, num_answers=k),
        limits=limits,
        probe=not no_probe,
    )
    run = run_config(ctx, config_file, sets, flagged, BUILD_FIELDS)
    role, limits, k = run.teacher.role, run.limits, run.teacher.num_answers
    if run.teacher.store is None:
        raise _fail("no teacher store: give --store (or ropd.teacher.store with -c)")
    store = run.teacher.store
    items = prompt_items(
        load_records(data, split=split, name=name, limit=limit),
        prompt_field=prompt_field,
        system_prompt=system_prompt,
        system_field=system_field,
        id_field=id_field,
    )
    if not items:
        raise _fail(f"{data}: no prompts")
    if use_n is not None and old_n is not None and use_n != old_n:
        raise _fail("--use-n/--no-use-n and its old spelling --n/--no-n disagree; give one")
    chosen_n = use_n if use_n is not None else old_n

    # the builder reports every finished request; the display starts once it knows the total
    display = RunProgress(PROGRESS_LABEL, PROGRESS_UNIT, enabled=progress and not as_json)
    shown = ReportProgress(display)
    try:
        with display:  # the store is locked by the build's session
            report = build_store(
                items,
                store,
                role,
                k,
                limits=limits,
                system_prompt=system_prompt,
                usable=usable,
                use_n=role.base_url is not None if chosen_n is None else chosen_n,
                max_pending=max_pending,
                max_rounds=max_rounds,
                on_progress=shown,
                probe=run.probe,
            )
    except KeyboardInterrupt:
        here = shown.report.answers_stored if shown.report is not None else 0
        raise Interrupted(
            f"interrupted: {_answers_in(store)} teacher answers are saved in {store} "
            f"({here} from this run)\n"
            f"the same command continues (a build asks only for what is missing): "
            f"{resume_command()}"
        ) from None
    except BuildAborted as exc:
        raise BuildAborted(f"{exc} (finished answers are kept in {store})") from None
    summary = report.as_dict()
    if as_json:
        print(json.dumps(summary))
    else:
        console = Console(soft_wrap=True)
        skipped = (
            f", {report.skipped_truncated} not asked again (answers cut off at this max_tokens)"
            if report.skipped_truncated
            else ""
        )
        console.print(
            f"{report.prompts} prompts, {report.complete_before} already complete{skipped}; "
            f"{report.requests} requests ({report.failed_requests} failed), "
            f"{report.answers_stored} answers stored {dict(report.by_status)} "
            f"in {report.wall_s:.1f} s -> {store}",
            markup=False,
            highlight=False,
        )
        for line in report.errors[:5]:
            console.print(f"  {line}", markup=False, highlight=False)
        note = report.truncation_note()  # also in the --json report as "note"
        if note:
            console.print(note, markup=False, highlight=False)
    error = report.shortfall_error()  # None if only cut-off answers are short and some exist
    if error is not None:
        raise error  # exit 1: the teacher did not deliver; what it did deliver is kept


def _answers_in(path: Path) -> int:
    """Answers in the store (read once, on a read-only connection); 0 before it has its tables."""
    if not path.is_file():
        return 0
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _existing_store(path: Path) -> TeacherStore:
    if not path.is_file():
        raise _fail(f"{path}: no such teacher store")
    return TeacherStore(path)


@teacher_app.command("stats")
def stats(
    store: Annotated[Path, typer.Option(help="Teacher store (SQLite file).")],
    k: Annotated[int | None, typer.Option(*K_FLAGS, help=K_STATS_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Prompts, answers by status, fingerprints and tokens in a store."""
    with _existing_store(store) as teacher_store:
        info = teacher_store.stats(k=k)
    if as_json:
        print(json.dumps(info))
        return
    _print_stats(info, k)


def _print_stats(info: dict[str, Any], k: int | None) -> None:
    console = Console(soft_wrap=True)
    statuses = ", ".join(f"{s} {n}" for s, n in info["by_status"].items())
    console.print(
        f"{info['path']}: {info['prompts']} prompts, {info['answers']} answers ({statuses}); "
        f"tokens {info['prompt_tokens']:,} prompt / {info['completion_tokens']:,} completion",
        markup=False,
        highlight=False,
    )
    if info["prompts_known_by_raw_hash_only"]:
        console.print(
            f"{info['prompts_known_by_raw_hash_only']} imported prompts are known only by the "
            "reference index's raw_prompt_hash",
            markup=False,
        )
    table = Table("fingerprint", "model", "sampling", "answers", "prompts", "ok per prompt")
    if k is not None:
        table.add_column(f"prompts with >= {k} ok")
    for entry in info["fingerprints"]:
        fields = entry["fields"]
        sampling = " ".join(
            f"{key}={fields[key]}"
            for key in ("temperature", "top_p", "max_tokens")
            if fields.get(key) is not None
        )
        if fields.get("system_prompt"):
            sampling += " +system"
        if fields.get("extra"):
            sampling += " " + json.dumps(fields["extra"], sort_keys=True)
        histogram = " ".join(f"{n}:{c}" for n, c in entry["ok_per_prompt"].items())
        row = [entry["hash"], fields["model"], sampling, str(entry["answers"]),
               str(entry["prompts"]), histogram]  # fmt: skip
        if k is not None:
            row.append(str(entry[f"prompts_with_{k}_ok"]))
        table.add_row(*row)
    console.print(table)


@teacher_app.command("export")
def export(
    store: Annotated[Path, typer.Option(help="Teacher store (SQLite file).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write.")],
) -> None:
    """Write every answer as one JSON line (messages and fingerprint included)."""
    with _existing_store(store) as teacher_store:
        count = teacher_store.export_jsonl(output)
    Console(soft_wrap=True).print(
        f"exported {count} answers to {output}", markup=False, highlight=False
    )


@teacher_app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(help="JSONL from `ropd teacher export`, or ropd.teacher_index.v1/v2 rows."),
    ],
    store: Annotated[Path, typer.Option(help="Teacher store (SQLite file, created if missing).")],
) -> None:
    """Add answers from a JSONL file; importing the same file twice adds nothing."""
    if not file.is_file():
        raise _fail(f"{file}: no such file")
    with TeacherStore(store) as teacher_store:
        report = teacher_store.import_jsonl(file)
    Console(soft_wrap=True).print(
        f"imported {report.added} answers ({report.skipped} already present, "
        f"{report.renumbered} renumbered, {report.legacy_rows} reference-index rows, "
        f"{report.rows_by_raw_hash} known only by raw_prompt_hash) into {store}",
        markup=False,
        highlight=False,
    )
