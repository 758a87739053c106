"""`ropd verl prepare-data`: a prompt file as the Parquet rows verl's RLHFDataset reads.

Flags only; the rows are built by `ropd.integrations.verl.data`. The reward side needs no
command: verl loads `RopdRewardManager` itself (docs/verl.md).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from ropd.cli.run_options import ConfigFile, Sets, run_config
from ropd.data.records import load_records
from ropd.errors import InputError
from ropd.integrations.verl.data import RowOptions, hold_out, verl_rows, write_parquet
from ropd.integrations.verl.settings import DATA_SOURCE, VAL_SPLIT
from ropd.reward.config import ScorerConfig
from ropd.run_config import RunConfig
from ropd.teacher.config import TeacherConfig

verl_app = typer.Typer(
    help="ROPD on verl: data preparation (see docs/verl.md).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add `ropd verl ...` to the top-level app."""
    app.add_typer(verl_app, name="verl")


# Each flag is one field of the run configuration (`-c ropd.yaml` and `--set` read the same).
PREPARE_FIELDS = {"teacher_store": "teacher.store", "k": "scorer.num_teacher_refs"}


@verl_app.command("prepare-data")
def prepare_data(
    ctx: typer.Context,
    data: Annotated[
        str,
        typer.Argument(
            help="Prompts: a JSONL/JSON/Parquet/CSV file or a Hugging Face dataset id.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Parquet file to write.")],
    split: Annotated[
        str,
        typer.Option(help=f"`extra_info.split` of every row; `{VAL_SPLIT}` for validation files."),
    ] = "train",
    data_source: Annotated[
        str, typer.Option(help="`data_source` of the rows (the rows RopdRewardManager scores).")
    ] = DATA_SOURCE,
    ability: Annotated[str, typer.Option(help="`ability` of the rows (verl's label).")] = "general",
    prompt_field: Annotated[
        str, typer.Option(help="Field with the prompt (string or chat messages).")
    ] = "prompt",
    answer_field: Annotated[
        str | None, typer.Option(help="Field copied to reward_model.ground_truth, if present.")
    ] = "answer",
    id_field: Annotated[str | None, typer.Option(help="Field with the prompt id.")] = "id",
    rubric_field: Annotated[
        str | None,
        typer.Option(
            help="Field with the dataset's own rubric (RaR's `rubric`), checked and copied to "
            "extra_info.rubric when a record has it."
        ),
    ] = "rubric",
    system_prompt: Annotated[
        str | None, typer.Option(help="System message put before every prompt.")
    ] = None,
    teacher_store: Annotated[
        Path | None,
        typer.Option(help="Teacher store: put each prompt's teacher answers into the rows."),
    ] = None,
    k: Annotated[
        int, typer.Option("-k", "--num-teacher-refs", min=1, help="Teacher answers per row.")
    ] = 4,
    dataset_split: Annotated[str, typer.Option(help="Split of a Hugging Face dataset.")] = "train",
    subset: Annotated[str | None, typer.Option(help="Config of a Hugging Face dataset.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N prompts.")] = None,
    val_output: Annotated[
        Path | None,
        typer.Option(
            help=f"Also write a validation file (`split` {VAL_SPLIT}) of --val-size prompts."
        ),
    ] = None,
    val_size: Annotated[
        int | None,
        typer.Option(min=1, help="Prompts held out of -o for --val-output, drawn at random."),
    ] = None,
    val_seed: Annotated[int, typer.Option(help="Seed of the held-out draw.")] = 0,
    config_file: ConfigFile = None,
    sets: Sets = None,
) -> None:
    """Write verl's dataset rows (data_source, prompt, ability, reward_model, extra_info).

    With `-c ropd.yaml` (the file verl's reward manager reads) the teacher store, its
    fingerprint choice and K come from its `ropd:` section: the rows carry the K the reward
    uses (`--set` and the flags given override it). `--val-output val.parquet --val-size N`
    holds N prompts out of the training file and writes them as the validation file.
    """
    if (val_output is None) != (val_size is None):
        raise InputError("--val-output and --val-size go together: give both or neither")
    flagged = RunConfig(
        teacher=TeacherConfig(store=teacher_store), scorer=ScorerConfig(num_teacher_refs=k)
    )
    run = run_config(ctx, config_file, sets, flagged, PREPARE_FIELDS)
    teacher_store, k = run.teacher.store, run.k
    records = load_records(data, split=dataset_split, name=subset, limit=limit)
    options = RowOptions(
        split=split,
        data_source=data_source,
        ability=ability,
        prompt_field=prompt_field,
        answer_field=answer_field,
        id_field=id_field,
        system_prompt=system_prompt,
        rubric_field=rubric_field,
    )
    with ExitStack() as stack:
        references = None
        if teacher_store is not None:
            from ropd.teacher.references import StoreReferences
            from ropd.teacher.store import TeacherStore

            if not teacher_store.is_file():
                raise InputError(f"--teacher-store {teacher_store}: no such file")
            store = stack.enter_context(TeacherStore(teacher_store))
            references = StoreReferences.from_config(store, run.teacher, k)
        train, held_out = (records, [])
        if val_size is not None:
            train, held_out = hold_out(records, val_size, seed=val_seed, id_field=id_field)
        rows = verl_rows(train, options, references)
        val_rows = (
            verl_rows(held_out, replace(options, split=VAL_SPLIT), references) if held_out else []
        )
    write_parquet(rows, output)
    summary: dict[str, object] = {
        "rows": len(rows),
        "with_teacher_responses": _with_teacher(rows),
        "output": str(output),
    }
    if val_output is not None:
        write_parquet(val_rows, val_output)
        summary |= {
            "val_rows": len(val_rows),
            "val_with_teacher_responses": _with_teacher(val_rows),
            "val_output": str(val_output),
        }
    answers = [_teacher_count(row) for row in rows + val_rows]
    short = sum(0 < n < k for n in answers)
    if teacher_store is not None and short:
        summary["fewer_than_k"] = short
        typer.echo(
            f"warning: {short} of {len(answers)} rows have fewer than {k} teacher answers (the "
            "store has no more for them); `ropd teacher build` can add them",
            err=True,
        )
    typer.echo(json.dumps(summary))


def _teacher_count(row: dict) -> int:
    return len(row["extra_info"].get("teacher_responses", []))


def _with_teacher(rows: list[dict]) -> int:
    return sum(_teacher_count(row) > 0 for row in rows)
