"""The ``promptlab`` command line (Typer). The only module in promptlab that prints.

Heavy imports happen inside commands so ``promptlab --help`` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(name="promptlab", help="Notebook-first prompt experimentation, offline by default.",
                  no_args_is_help=True, add_completion=False)
sim_app = typer.Typer(help="The offline simulator: an OpenAI-compatible server (not a language model).",
                      no_args_is_help=True)
app.add_typer(sim_app, name="sim")
experiment_app = typer.Typer(help="A/B experiments from YAML experiment files.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")

DB_OPTION = typer.Option(None, "--db", help="SQLAlchemy URL or SQLite path (default: $PROMPTLAB_DB or "
                                            "./promptlab.db).")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _print_status(run, with_status: bool = True) -> None:
    """The run's status, and its failed cells grouped by cause."""
    if with_status:
        status, detail = run.status, run.status_detail
        typer.echo(f"\nStatus: {status}" + (f" -- {detail}" if detail else ""))
    errors = run.errors()
    if len(errors):
        typer.echo("Errors (by variant and type; one example each):")
        for e in errors.itertuples(index=False):
            typer.echo(f"  {e.variant}  {e.count:>6} x {e.error_type}: {_clip(e.example)}")


def _clip(text, limit: int = 160) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_run(run, title: str | None = None, analysis_options: dict | None = None):
    """The summary table, the status with its error causes, and the verdicts of a run."""
    import pandas as pd

    summary = run.summary()
    shown = summary.drop(columns=[c for c in ("positive_ci_low", "positive_ci_high", "error_causes")
                                  if c in summary])
    if shown["rated"].fillna(0).sum() == 0:
        shown = shown.drop(columns=["rated", "positive_rate", "wins", "ties", "losses"])
    with pd.option_context("display.width", 160, "display.max_columns", 50):
        typer.echo(f"\n{title or 'Summary'} (run {run.guid})")
        typer.echo(shown.T.to_string(float_format=lambda v: f"{v:,.4g}"))
    _print_status(run)
    analysis = run.analysis(**(analysis_options or {}))
    _print_analysis(analysis)
    return analysis


def _print_analysis(analysis) -> None:
    typer.echo(f"\nVerdict (primary metric: {analysis.primary_metric}, baseline {analysis.baseline}, "
               f"unit: {'dataset row' if analysis.unit == 'rows' else analysis.unit}):")
    for c in analysis.primary:
        typer.echo(f"  {c}")
    if analysis.secondary:
        size = max((c.family_size for c in analysis.secondary), default=1)
        typer.echo(f"Other comparisons (Holm-adjusted over {size} comparisons):" if size > 1 else "Other comparisons:")
        for c in analysis.secondary:
            typer.echo(f"  {c}")


def _print_generation(generation) -> None:
    """One row of the generation log, as every call leaves it."""
    typer.echo("\nOne row of the generation log:")
    fields = ("guid", "action", "action_version", "environment", "variant", "model", "status", "cached",
              "usage", "latency_ms", "cost_usd", "created_at")
    for name in fields:
        typer.echo(f"  {name:15s} {getattr(generation, name)}")
    typer.echo(f"  {'input':15s} {generation.input}")
    typer.echo(f"  {'msg':15s} {generation.msg}")


@experiment_app.command("run")
def experiment_run(
    file: str = typer.Argument(..., help="Experiment YAML: actions, variants, dataset, evaluators."),
    db: str = DB_OPTION,
    report: str = typer.Option(None, "--report", "-o", help="Write an HTML report here (default: the "
                                                              "file's 'report:' if set)."),
    resume: str = typer.Option(None, "--resume", metavar="[RUN]",
                               help="Continue a run instead of starting one: RUN's GUID, or nothing for the "
                                    "latest unfinished run of this experiment and dataset. Done cells are "
                                    "not redone."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    baseline: str = typer.Option(None, "--baseline", help="The variant challengers are compared with "
                                                          "(default: the file's 'baseline:', else the first)."),
    primary: str = typer.Option(None, "--primary", help="The metric of the headline verdict and the gate "
                                                        "(default: the file's 'primary:', else ratings, "
                                                        "preferences, the first evaluator)."),
    fail_on: str = typer.Option(None, "--fail-on", help="CI gate: 'regression' exits 1 when a challenger is "
                                                        "significantly worse on the primary metric; "
                                                        "'inconclusive' also when it is not settled."),
    summary_md: str = typer.Option(None, "--summary-md", help="Write a Markdown summary here (default: "
                                                              "$GITHUB_STEP_SUMMARY when set, appended)."),
    junit: str = typer.Option(None, "--junit", help="Write JUnit XML here (one test case per comparison)."),
) -> None:
    """Run an experiment file and print its summary table, status and verdicts.

    Exits 1 when the run stopped early (the cause is printed) or fails the --fail-on gate, 130 on
    Ctrl-C (with the command that resumes it)."""
    import os

    from promptlab.experiments import gate

    from promptlab import Lab
    from promptlab.errors import PromptlabError, RunFailedError
    from promptlab.experiments.config import load_experiment_file, run_experiment_file

    try:
        gate.check_fail_on(fail_on)
        spec, _ = load_experiment_file(file)
        with Lab(db) as lab:
            try:
                run = run_experiment_file(lab, file, progress=progress,
                                          resume=True if resume == _LATEST else resume)
            except RunFailedError as exc:
                typer.echo(f"error: run {exc.run_guid} stopped: {exc}", err=True)
                if exc.run_guid:
                    _print_status(lab.experiments.get_run(exc.run_guid), with_status=False)
                    typer.echo(f"\nresume it with: promptlab experiment run {file} --resume {exc.run_guid}")
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                latest = lab.experiments.latest_unfinished(spec.name)
                typer.echo("\ninterrupted: nothing more is sent; finished cells are kept.", err=True)
                if latest is not None:
                    typer.echo(f"resume it with: promptlab experiment run {file} --resume {latest.guid}",
                               err=True)
                raise typer.Exit(130) from None
            options = {"baseline": baseline or spec.baseline, "primary": primary or spec.primary,
                       "cluster": spec.cluster}
            analysis = _print_run(run, spec.name, options)
            target = report or spec.report
            if target:
                from promptlab.report import write_report

                typer.echo(f"\nreport: {os.path.abspath(write_report(run, target, analysis_options=options))}")
            markdown_path = summary_md or os.environ.get("GITHUB_STEP_SUMMARY")
            if markdown_path:
                with open(markdown_path, "a" if not summary_md else "w", encoding="utf-8") as out:
                    out.write(gate.markdown_summary(analysis, f"promptlab: {spec.name}", fail_on))
            if junit:
                with open(junit, "w", encoding="utf-8") as out:
                    out.write(gate.junit_xml(analysis, spec.name, fail_on))
            failed = gate.failures(analysis, fail_on)
            if failed:
                typer.echo(f"\ngate failed (--fail-on {fail_on}): " + "; ".join(
                    f"{c.challenger} {c.outcome.replace('_', ' ')} on {c.metric}" for c in failed), err=True)
                raise typer.Exit(1)
            if fail_on:
                typer.echo(f"\ngate passed (--fail-on {fail_on})")
    except PromptlabError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(exc)


@app.command("runs")
def runs_command(
    experiment: str = typer.Argument(None, help="Only this experiment's runs (name or GUID)."),
    db: str = DB_OPTION,
) -> None:
    """List experiment runs, newest last: GUID, experiment, status, cells recorded, started."""
    from promptlab import Lab
    from promptlab.errors import PromptlabError

    try:
        with Lab(db) as lab:
            runs = lab.experiments.runs(experiment)
            names = {e.guid: e.name for e in lab.experiments.list()}
            if not runs:
                typer.echo(f"no runs in {lab.store.safe_url}")
                return
            typer.echo(f"{'run':<36}  {'experiment':<24}  {'status':<16}  {'cells':>13}  started (UTC)")
            for run in runs:
                record = run.record
                total = run.n_rows * run.repeats * len(run.labels)
                recorded = sum(lab.store.cell_counts(run.guid).values())
                started = record["created_at"].strftime("%Y-%m-%d %H:%M:%S") if record["created_at"] else ""
                typer.echo(f"{run.guid:<36}  {names.get(run.experiment_guid, '?')[:24]:<24}  {run.status:<16}  "
                           f"{f'{recorded}/{total}':>13}  {started}")
    except PromptlabError as exc:
        _fail(exc)


@app.command("report")
def report_command(
    run_guid: str = typer.Argument(..., help="The run's GUID."),
    output: str = typer.Option("report.html", "--output", "-o", help="Where to write the HTML."),
    db: str = DB_OPTION,
) -> None:
    """Write a standalone HTML report (plotly charts, works offline) for an experiment run."""
    from promptlab import Lab
    from promptlab.errors import PromptlabError
    from promptlab.report import write_report

    from promptlab.errors import NotFoundError

    try:
        with Lab(db) as lab:
            try:
                run = lab.experiments.get_run(run_guid)
            except NotFoundError:
                raise NotFoundError("run", run_guid, f"searched {lab.store.safe_url}; `promptlab runs` lists "
                                                     "its runs, --db chooses another store") from None
            typer.echo(write_report(run, output))
    except PromptlabError as exc:
        _fail(exc)


@app.command("demo")
def demo(
    file: str = typer.Option("data/experiments/support_ab.yaml", help="The experiment file to run."),
    db: str = DB_OPTION,
    report: str = typer.Option("report.html", "--report", "-o", help="Where to write the HTML report."),
) -> None:
    """The main job, offline: an A/B experiment of two support-reply prompts on the simulator."""
    import os
    import time

    from promptlab import Lab
    from promptlab.errors import PromptlabError
    from promptlab.experiments.config import load_experiment_file, run_experiment_file
    from promptlab.report import write_report

    started = time.perf_counter()
    typer.echo("promptlab demo: an offline A/B experiment. Models are 'sim:' -- promptlab's simulator,\n"
               "which answers from the prompt's own text; it is not a language model. No API key needed.")
    try:
        spec, _ = load_experiment_file(file)
        with Lab(db) as lab:
            typer.echo(f"store: {lab.store.safe_url}\nexperiment: {spec.name} -- {spec.description}")
            run = run_experiment_file(lab, file, progress=True)
            _print_run(run, spec.name)
            _print_generation(lab.generations.get(run.cells().iloc[-1]["generation_guid"]))
            path = write_report(run, report)
    except PromptlabError as exc:
        _fail(exc)
    typer.echo(f"\nreport: {os.path.abspath(path)}\ndone in {time.perf_counter() - started:.1f} s")


@sim_app.command("serve")
def sim_serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port to bind."),
    latency_ms: float = typer.Option(0.0, min=0, help="Delay before every answer, in ms."),
    token_latency_ms: float = typer.Option(0.0, min=0, help="Extra delay per streamed piece, in ms."),
    error_rate: float = typer.Option(0.0, min=0, max=1, help="Share of requests answered 429."),
    server_error_rate: float = typer.Option(0.0, min=0, max=1, help="Share of requests answered 500."),
    timeout_rate: float = typer.Option(0.0, min=0, max=1, help="Share of requests that hang."),
    retry_after: float = typer.Option(1.0, min=0, help="Retry-After seconds sent with 429."),
    hang_ms: float = typer.Option(30_000.0, min=0, help="How long a simulated timeout hangs, in ms."),
    seed: int = typer.Option(0, help="Seed for the fault draws."),
) -> None:
    """Serve the simulator's OpenAI-compatible API at http://HOST:PORT/v1 until interrupted."""
    import uvicorn

    from promptlab.errors import ConfigError
    from promptlab.providers.sim import create_app

    try:
        sim = create_app(latency_ms=latency_ms, error_rate=error_rate,
                         server_error_rate=server_error_rate, timeout_rate=timeout_rate,
                         retry_after=retry_after, seed=seed, token_latency_ms=token_latency_ms,
                         hang_ms=hang_ms)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"promptlab simulator (not a language model) serving an OpenAI-compatible API "
               f"at http://{host}:{port}/v1 (models: echo, extractive, judge); Ctrl+C to stop")
    uvicorn.run(sim, host=host, port=port, log_level="warning")


# -- the HTTP gateway (issue 9) -------------------------------------------------------------

keys_app = typer.Typer(help="API keys of the HTTP gateway (stored hashed; a key is shown once).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8080, min=0, max=65535, help="TCP port to bind."),
    db: str = DB_OPTION,
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (share the store; use PostgreSQL)."),
    public_url: str = typer.Option(None, "--public-url", help="The gateway's address as clients see it, "
                                                               "for feedback_url (default: each request's)."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log",
                                    help="Log client, method, path and status of every request (never headers)."),
) -> None:
    """Serve the HTTP API (/v1/actions/, /v1/data/{guid}, /v1/feedback, ...) until interrupted."""
    from promptlab.errors import PromptlabError
    from promptlab.gateway.server import serve
    from promptlab.store import Store

    if public_url is not None and not public_url.startswith(("http://", "https://")):
        _fail(ValueError(f"--public-url must be an http(s) URL, not {public_url!r}"))
    try:
        store = Store(db)  # open (and migrate) once here, so a bad --db fails before any worker starts
    except PromptlabError as exc:
        _fail(exc)
    url, safe_url = store.url, store.safe_url
    if workers > 1 and store.dialect == "sqlite":
        typer.echo("note: several workers on one SQLite file queue for its write lock; "
                   "use PostgreSQL for throughput", err=True)
    store.close()
    typer.echo(f"promptlab gateway on http://{host}:{port}/v1 (store: {safe_url}, workers: {workers}; "
               f"OpenAPI at /openapi.json); Ctrl+C to stop")
    serve(url, host=host, port=port, workers=workers, public_url=public_url, access_log=access_log)


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="Who or what uses the key."),
    scope: list[str] = typer.Option(..., "--scope", help="run, feedback or admin; repeat for several."),
    db: str = DB_OPTION,
) -> None:
    """Create a key and print it ONCE (only its hash is stored)."""
    from promptlab.errors import PromptlabError
    from promptlab.gateway.keys import ApiKeys
    from promptlab.store import Store

    try:
        store = Store(db)
        try:
            record, token = ApiKeys(store).create(name, scope)
        finally:
            store.close()
    except PromptlabError as exc:
        _fail(exc)
    typer.echo(f"created API key {record.id} ({record.name}; scopes: {', '.join(record.scopes)})", err=True)
    typer.echo("store it now, it cannot be shown again:", err=True)
    typer.echo(token)


@keys_app.command("list")
def keys_list(db: str = DB_OPTION) -> None:
    """List keys (id, name, scopes, created, revoked); secrets are never shown."""
    from promptlab.errors import PromptlabError
    from promptlab.gateway.keys import ApiKeys
    from promptlab.store import Store

    try:
        store = Store(db)
        try:
            keys = ApiKeys(store).list()
        finally:
            store.close()
    except PromptlabError as exc:
        _fail(exc)
    if not keys:
        typer.echo("no API keys; create one with `promptlab keys create --name NAME --scope run`")
        return
    typer.echo(f"{'id':<12}  {'name':<24}  {'scopes':<20}  {'created (UTC)':<19}  revoked (UTC)")
    for key in keys:
        created = key.created_at.strftime("%Y-%m-%d %H:%M:%S") if key.created_at else ""
        revoked = key.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if key.revoked_at else "-"
        typer.echo(f"{key.id:<12}  {key.name[:24]:<24}  {','.join(key.scopes):<20}  {created:<19}  {revoked}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="The key's id (as in `keys list`)."),
    db: str = DB_OPTION,
) -> None:
    """Revoke a key: every gateway refuses it from its next request on."""
    from promptlab.errors import PromptlabError
    from promptlab.gateway.keys import ApiKeys
    from promptlab.store import Store

    try:
        store = Store(db)
        try:
            key = ApiKeys(store).revoke(key_id)
        finally:
            store.close()
    except PromptlabError as exc:
        _fail(exc)
    typer.echo(f"revoked API key {key.id} ({key.name})")


_LATEST = "latest"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``promptlab``)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    # Typer cannot declare an option whose value is optional: a bare `--resume` (last, or before
    # another option) means the latest unfinished run.
    for i, arg in enumerate(args):
        if arg == "--resume" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            args[i + 1:i + 1] = [_LATEST]
            break
    app(args=args, prog_name="promptlab")


if __name__ == "__main__":
    main()
