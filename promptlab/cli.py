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


def main() -> None:
    """Console-script entry point (``promptlab``)."""
    app()


if __name__ == "__main__":
    main()
