"""`flyte-decl schema`: print the JSON Schema of the environments file."""

import click

from flyte_decl.config.schema import schema_text


@click.command()
def schema() -> None:
    """Print the JSON Schema (2020-12) that editors and CI validate environments files against."""
    click.echo(schema_text(), nl=False)
