import typer

app = typer.Typer(help="fv: emotion-driven facial video generation", no_args_is_help=True)


def main() -> None:
    app()
