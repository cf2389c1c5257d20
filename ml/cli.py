"""`replyqa` command line: one sub-command per pipeline stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ml.config import ProjectConfig, load_config

app = typer.Typer(help="Reply-quality classifier for online-lending agents.", no_args_is_help=True)
data_app = typer.Typer(help="Labelled data: validate, describe, split; the unlabelled corpus.", no_args_is_help=True)
app.add_typer(data_app, name="data")
review_app = typer.Typer(help="QA review through Label Studio: export tasks, import decisions.", no_args_is_help=True)
app.add_typer(review_app, name="review")
console = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the terminal width

DEFAULT_CONFIG = Path("configs/default.yaml")


def project_config(path: Path = DEFAULT_CONFIG) -> ProjectConfig:
    return load_config(path) if path.exists() else ProjectConfig()


def _load_valid(paths: list[str]):
    from ml.data.records import expand_paths, load_records

    files = expand_paths(paths)
    if not files:
        console.print(f"[red]no data files match {escape(' '.join(paths))}[/red]")
        raise typer.Exit(2)
    return files, load_records(files)


@data_app.command("validate")
def data_validate(paths: list[str] = typer.Argument(..., help="Files, folders or glob patterns.")) -> None:
    """Check every record against the LABELS.md contract; list every error with file, line and field."""
    files, result = _load_valid(paths)
    for error in result.errors:
        typer.echo(str(error))
    summary = f"{len(files)} files, {len(result.records)} valid records, {len(result.errors)} errors"
    typer.echo(summary)
    raise typer.Exit(1 if result.errors else 0)


@data_app.command("stats")
def data_stats(
    paths: list[str] = typer.Argument(None, help="Files, folders or globs (default: the labelled corpus)."),
    as_json: bool = typer.Option(False, "--json", help="Write the statistics as one JSON object to stdout."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when the coverage targets in the config are not met."),
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config (coverage targets)."),
) -> None:
    """Counts, label rates, co-occurrence, scenario/channel shares, lengths, near-duplicates."""
    from ml.data.stats import corpus_stats, coverage_failures

    data_config = project_config(config).data
    files, result = _load_valid(paths or [data_config.labelled_glob])
    if result.errors:
        console.print(f"[yellow]{len(result.errors)} invalid records skipped; run `replyqa data validate`[/yellow]")
    stats = corpus_stats(result.records, data_config.near_duplicate_threshold)
    failures = coverage_failures(stats, data_config.coverage)
    stats["coverage_failures"] = failures
    if as_json:
        typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        _print_stats(stats)
    if check and failures:
        raise typer.Exit(1)


def _print_stats(stats: dict) -> None:
    out = Console()
    out.print(
        f"[bold]{stats['records']} records[/bold]  context {stats['context_share']:.1%}  "
        f"boundary {stats['boundary']}  noisy {stats['noisy']}  minimal pairs {stats['minimal_pairs']}  "
        f"near-duplicates {stats['near_duplicates']}"
    )
    table = Table("label", "positives", "rate", *stats["co_occurrence"], title="labels and co-occurrence")
    for label, row in stats["co_occurrence"].items():
        table.add_row(
            label,
            str(stats["label_positives"][label]),
            f"{stats['label_rates'][label]:.1%}",
            *[str(v) for v in row.values()],
        )
    out.print(table)
    out.print("scenarios: " + "  ".join(f"{k} {v:.1%}" for k, v in stats["scenario_share"].items()))
    out.print("channels:  " + "  ".join(f"{k} {v:.1%}" for k, v in stats["channel_share"].items()))
    out.print("length:    " + "  ".join(f"{k} {v}" for k, v in stats["length"].items()))
    out.print("noise:     " + "  ".join(f"{k} {v}" for k, v in stats["noise_kinds"].items()))
    for failure in stats["coverage_failures"]:
        out.print(f"[red]coverage: {failure}[/red]")
    if not stats["coverage_failures"]:
        out.print("[green]coverage targets met[/green]")


@data_app.command("split")
def data_split(
    paths: list[str] = typer.Argument(None, help="Labelled files (default: the labelled corpus)."),
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config (seed, fractions, output folder)."),
    out_dir: Path | None = typer.Option(None, help="Output folder (default: data.split_dir of the config)."),
) -> None:
    """Write a deterministic, seeded train/validation/test split under data/ (a label edit moves no record)."""
    from ml.data.split import split_records, write_split

    data_config = project_config(config).data
    files, result = _load_valid(paths or [data_config.labelled_glob])
    if result.errors:
        console.print(f"[red]{len(result.errors)} invalid records; fix them first (`replyqa data validate`)[/red]")
        raise typer.Exit(1)
    split = split_records(
        result.records, data_config.split_fractions, data_config.seed, data_config.near_duplicate_threshold
    )
    sizes = write_split(split, out_dir or data_config.split_dir)
    typer.echo(json.dumps({"seed": data_config.seed, "sizes": sizes}))


@data_app.command("corpus")
def data_corpus(
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config (sources, exclusions, output path)."),
    output: Path | None = typer.Option(None, help="Output text file (default: data.unlabelled_path)."),
) -> None:
    """Assemble the unlabelled Chinese pretraining corpus from permissively licensed sources,
    with every evaluation text left out; writes a manifest of sources and licences beside it."""
    from ml.data.corpus import EvaluationFilter, build_corpus, default_sources, evaluation_texts

    data_config = project_config(config).data
    train_file = str(Path(data_config.split_dir) / "train.jsonl")
    sources = default_sources(
        train_file, Path(data_config.indomain_dir), Path(data_config.external_dir), data_config.corpus_utterance_repeats
    )
    exclude = EvaluationFilter(evaluation_texts(Path(p) for p in data_config.corpus_exclude))
    manifest = build_corpus(sources, output or Path(data_config.unlabelled_path), exclude)
    typer.echo(json.dumps(manifest, ensure_ascii=False))


@app.command()
def pretrain(config: Path = typer.Option(Path("configs/pretrain.yaml"), help="Pretraining config.")) -> None:
    """Train a BERT tokenizer and pretrain a compact Chinese BERT (MLM, whole-word masking)."""
    from ml.config import PretrainConfig
    from ml.modeling.pretrain import pretrain as run_pretrain

    summary = run_pretrain(load_config(config, PretrainConfig))
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "loss_curve"}, ensure_ascii=False, indent=2))


@app.command()
def train(
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config; its `train` section (`teacher` with --teacher)."),
    teacher: bool = typer.Option(False, "--teacher", help="Train the config's `teacher` section instead."),
) -> None:
    """Fine-tune for the five labels, tune thresholds, evaluate on test, write the card, register in MLflow."""
    from ml.modeling.train import train as run_train

    settings = project_config(config)
    if teacher and settings.teacher is None:
        raise typer.BadParameter(f"{config} has no `teacher` section", param_hint="--teacher")
    chosen = settings.teacher if teacher else settings.train
    if settings.teacher and chosen.teacher == settings.teacher.output_dir and not Path(chosen.teacher).exists():
        raise typer.BadParameter(
            f"the teacher {chosen.teacher} is not trained yet: run `replyqa train --teacher` first (or `dvc repro`)",
            param_hint="--config",
        )
    summary = run_train(chosen, config_path=config, board=settings.scoreboard)
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))


@app.command()
def evaluate(
    model: str = typer.Option("models/default", help="Model directory, hub name or models:/ URI."),
    data: str = typer.Option("data/split/test.jsonl", help="Labelled file to evaluate on."),
    as_json: bool = typer.Option(False, "--json", help="Write the report as one JSON object to stdout."),
    out_dir: Path | None = typer.Option(
        None, help="Also write report.json, metrics.json, pr_curves.json, errors.jsonl and reliability.png here."
    ),
    baselines: bool = typer.Option(True, help="Train and report the keyword and TF-IDF baselines."),
    generalisation: bool = typer.Option(
        True, help="Also report held-out writers and out-of-domain false alarms (the scoreboard's headline)."
    ),
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config (train/validation files for the baselines)."),
    card: bool = typer.Option(
        False,
        help="Rewrite the model directory's MODEL_CARD.md with these numbers (a model trained before the "
        "evaluation sets grew); its training section describes the config's train recipe.",
    ),
    allow_training_overlap: bool = typer.Option(
        False, help="Measure even when `data` holds records the model was trained or tuned on (measures fit)."
    ),
) -> None:
    """Held-out writers and out-of-domain false alarms first (model and baselines), then per-label
    precision, recall, F1, ROC-AUC, PR-AUC, support, macro/micro F1 and thresholds on `data`."""
    from ml.evaluation.evaluate import TrainingOverlapError, tracked_evaluation
    from ml.evaluation.scoreboard import generalisation as beyond_test
    from ml.evaluation.scoreboard import model_system, systems_for
    from ml.modeling.scorer import Scorer

    settings = project_config(config)
    train_config = settings.train
    if card and not (baselines and generalisation and Path(model).is_dir()):
        raise typer.BadParameter("needs a model directory, --baselines and --generalisation", param_hint="--card")
    scorer = Scorer.load(model, runtime="portable")  # what the scoreboard and the card measure
    # the baselines are fitted once, for the test report and the scoreboard's sets
    train_file, validation_file = train_config.train_file, train_config.validation_file
    systems = systems_for(scorer, train_file, validation_file) if baselines else [model_system(scorer)]
    try:
        report = tracked_evaluation(scorer, data, systems[1:], out_dir, allow_training_overlap)
    except TrainingOverlapError as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(2) from None
    if generalisation:
        report["generalisation"] = beyond_test(systems, train_file, settings.scoreboard)
        if card:
            from ml.evaluation.evaluate import rewrite_model_card

            rewrite_model_card(Path(model), train_config, report, scorer)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    _print_report(report)


def _print_report(report: dict) -> None:
    from ml.evaluation.evaluate import generalisation_lines
    from ml.labels import LABELS

    out = Console()
    if report.get("generalisation"):
        out.print("\n".join(generalisation_lines(report["generalisation"])), markup=False)
    table = Table(
        "label",
        "precision",
        "recall",
        "F1",
        "ROC-AUC",
        "PR-AUC",
        "support",
        "threshold",
        title=f"{report['model']['name']} {report['model']['version']} on {report['data']['file']}",
    )
    for label in LABELS:
        row = report[label]
        table.add_row(
            label,
            *[str(row[k]) for k in ("precision", "recall", "f1", "roc_auc", "pr_auc", "support")],
            str(report["thresholds"][label]),
        )
    out.print(table)
    out.print(f"macro-F1 {report['macro_f1']}  micro-F1 {report['micro_f1']}")
    for name, baseline in report.get("baselines", {}).items():
        out.print(f"baseline {name}: macro-F1 {baseline['macro_f1']}  micro-F1 {baseline['micro_f1']}")


@app.command()
def scoreboard(
    model: str = typer.Option("models/default", help="Model directory, hub name or models:/ URI."),
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config (its `scoreboard` section, train files)."),
) -> None:
    """Generalisation scoreboard: held-out writers, out-of-domain false alarms, invariance, probes."""
    from ml.evaluation.scoreboard import tracked_scoreboard

    settings = project_config(config)
    board = tracked_scoreboard(model, settings.train, settings.scoreboard)
    typer.echo(json.dumps(board["headline"], indent=2))


@app.command()
def stack(
    model: Path = typer.Option(Path("models/default"), help="A trained model directory."),
    out: Path | None = typer.Option(None, help="Where the stacked model goes (default: the config's stack.out_dir)."),
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config (its `stack` section, train files)."),
) -> None:
    """Add the character n-gram part to a trained model, in place when --out is the model itself (the
    pipeline does this to the default; see the README), cut-offs of the mixed labels tuned on validation."""
    from ml.modeling.model_info import ModelLoadError
    from ml.modeling.stack import stack as run_stack

    settings = project_config(config)
    target = out or Path(settings.stack.out_dir)
    try:
        info = run_stack(model, target, settings.train, settings.stack)
    except (ModelLoadError, FileExistsError) as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(2) from None
    summary = {"out": str(target), "version": info.version, "thresholds": info.thresholds}
    typer.echo(json.dumps({**summary, "test_macro_f1": info.test_metrics["macro_f1"]}, indent=2))


@app.command()
def promote(
    version: str = typer.Argument(..., help="Registered model version to promote."),
    name: str = typer.Option("replyqa", help="Registered model name."),
    alias: str = typer.Option("champion", help="Alias to set; Scorer.load('models:/NAME@ALIAS') follows it."),
) -> None:
    """Point a registry alias (default `champion`) at a registered model version."""
    from ml.tracking import promote as set_alias

    set_alias(name, version, alias)
    typer.echo(f"models:/{name}@{alias} -> version {version}")


@app.command()
def score(
    source: str = typer.Argument(..., metavar="INPUT", help="CSV, JSONL or Parquet file; - for JSONL on stdin."),
    output: str = typer.Option(..., "--output", "-o", help="CSV, JSONL or Parquet file; - for JSONL on stdout."),
    model: str = typer.Option("models/default", help="Model directory, hub name or models:/ URI."),
    text_col: str = typer.Option("text", help="Column with the agent reply."),
    context_col: str = typer.Option("context", help="Column with the customer's preceding message (optional)."),
    id_col: str = typer.Option("id", help="Column with the row id (passed through like every column)."),
    encoding: str | None = typer.Option(
        None, help="Input text encoding: utf-8, utf-8-sig, gbk, gb18030 or utf-16 (default: from the BOM, else utf-8)."
    ),
    resume: bool = typer.Option(False, help="Continue an interrupted run of the same job."),
    redact: bool = typer.Option(False, help="Mask ID, card and phone numbers and codes in the text columns."),
    workers: int | None = typer.Option(
        None, min=1, help="Processes, each with its own model (default: score.workers)."
    ),
    runtime: str | None = typer.Option(None, help="auto, portable, onnx, openvino or torch (default: score.runtime)."),
    engine: str = typer.Option(
        "local", help="local, or ray: many files on a Ray cluster (pip install -e '.[distributed]')."
    ),
    address: str | None = typer.Option(
        None, help="With --engine ray: auto or ray://host:10001 (default: a local cluster)."
    ),
    num_actors: int = typer.Option(2, min=1, help="With --engine ray: scoring actors, each with its own model."),
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config (max characters, batch and chunk size)."),
) -> None:
    """Score every row of an archive; every input row appears in the output, scored or with its error.
    Exits 1 when no row could be scored (wrong text column or encoding), 2 when the job cannot run."""
    from ml.modeling.scorer import Scorer
    from ml.serving.batch import NothingScored, ScoreJob

    settings = project_config(config).score
    try:
        scorer = Scorer.load(model, **(settings.scorer_options() | ({"runtime": runtime} if runtime else {})))
        if engine == "ray":
            from ml.serving.batch import ChunkSettings
            from ml.serving.distributed import score_on_ray

            chunk = ChunkSettings(text_col, context_col, id_col, encoding or "utf-8", redact)
            counts = score_on_ray(
                scorer, source, output, chunk, settings.chunk_rows, encoding, address, num_actors, resume=resume
            )
            console.print(json.dumps(counts))
            return
        job = ScoreJob(
            scorer,
            source,
            output,
            text_col,
            context_col,
            id_col,
            settings.chunk_rows,
            encoding,
            redact,
            workers=workers or settings.workers,
        )
        counts = job.run(resume=resume, show_progress=output != "-" and sys.stderr.isatty())
    except NothingScored as error:
        console.print(f"[red]{escape(str(error))}[/red] (every row is in {escape(output)} with its error)")
        raise typer.Exit(1) from None
    except (ValueError, OSError) as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(2) from None
    console.print(json.dumps(counts.summary()))


@app.command()
def serve(
    model: str = typer.Option("models/default", help="Model directory, hub name or models:/ URI."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    workers: int | None = typer.Option(
        None, help="Server processes, each with its own model (default: serve.workers)."
    ),
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config (its `score` and `serve` sections)."),
) -> None:
    """Start the scoring API (FastAPI + uvicorn); docs at /docs."""
    import logging
    import os

    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from ml.modeling.backends import cpu_threads
    from ml.modeling.scorer import Scorer
    from ml.serving import create_app, timed_protocol

    settings = project_config(config)
    workers = workers or settings.serve.workers
    options = dict(host=host, port=port, log_level="info", timeout_keep_alive=5)
    if workers == 1:
        scorer = Scorer.load(model, **settings.score.scorer_options())  # a broken model fails here, in one line
        app_ = create_app(scorer, settings.score, settings.serve)
        uvicorn.run(app_, http=timed_protocol(settings.serve.header_timeout_s), **options)
        return
    Scorer.load(model, **settings.score.scorer_options())  # fail here, in one line, not in N workers
    os.environ.update(
        REPLYQA_MODEL=model,
        REPLYQA_CONFIG=str(config),
        REPLYQA_HEADER_TIMEOUT_S=str(settings.serve.header_timeout_s),
        REPLYQA_THREADS=str(max(1, cpu_threads() // workers)),
    )
    uvicorn.run(
        "ml.serving.app:app_from_env",
        factory=True,
        workers=workers,
        http="ml.serving.guard:TimedH11Protocol",
        **options,
    )


@app.command()
def report(
    scored: Path = typer.Argument(..., help="A file written by `replyqa score`."),
    output: Path = typer.Option(Path("reports/report.html"), "--output", "-o", help="HTML report to write."),
    summary: Path | None = typer.Option(None, help="Also write the numbers as JSON (and a CSV beside it)."),
    model: str = typer.Option("models/default", help="Model whose name, version and test metrics the report shows."),
    timezone: str = typer.Option("Asia/Shanghai", help="Time zone of the report's days; naive timestamps are in it."),
    show_pii: bool = typer.Option(False, help="Show ID, card and phone numbers unmasked (masked by default)."),
    config: Path = typer.Option(DEFAULT_CONFIG, help="Project config (the conversation rubric: report.conversation)."),
) -> None:
    """A self-contained HTML report for QA leads, plus a JSON/CSV summary for BI tools; with a
    conversation id column, conversation scorecards and auto-fail items too."""
    from ml.reporting.report import build_report

    try:
        rubric = project_config(config).report.conversation
        written = build_report(scored, output, summary, model, timezone, show_pii, rubric)
    except (ValueError, OSError) as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(2) from None
    for path in written:
        typer.echo(str(path))


@review_app.command("export")
def review_export(
    scored: Path = typer.Argument(..., help="A file written by `replyqa score`."),
    output: Path = typer.Option(..., "--output", "-o", help="Label Studio tasks (JSON); the config goes beside it."),
    select: str = typer.Option("uncertain", help="uncertain (nearest a threshold), flagged or random."),
    n: int = typer.Option(300, help="How many replies."),
    per_agent: int = typer.Option(20, help="At most this many replies of one agent."),
    model: str = typer.Option("models/default", help="Model whose thresholds define uncertainty."),
) -> None:
    """Write Label Studio tasks with the model's decisions as pre-annotations, plus the labelling config."""
    from ml.data.review import export_tasks

    try:
        typer.echo(json.dumps(export_tasks(scored, output, model, select, n, per_agent)))
    except (ValueError, OSError) as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(2) from None


@review_app.command("import")
def review_import(
    export: Path = typer.Argument(..., help="A Label Studio JSON export."),
    output: Path = typer.Option(..., "--output", "-o", help="Records to write, e.g. data/labelled/review-DATE.jsonl."),
) -> None:
    """Turn agreed reviews into validated records (source: reviewed); list conflicts, count skips."""
    from ml.data.review import import_annotations, write_import

    try:
        tasks = json.loads(export.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        console.print(f"[red]{escape(f'{export}: {error}')}[/red]")
        raise typer.Exit(2) from None
    if not isinstance(tasks, list):
        console.print(f"[red]{escape(str(export))}: expected a Label Studio JSON export (a list of tasks)[/red]")
        raise typer.Exit(2)
    typer.echo(json.dumps(write_import(import_annotations(tasks), output)))


def main() -> None:
    """The `replyqa` entry point: a model that cannot be loaded is one red line, not a traceback."""
    from ml.modeling.model_info import ModelLoadError

    try:
        app()
    except ModelLoadError as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        sys.exit(2)


if __name__ == "__main__":
    main()
