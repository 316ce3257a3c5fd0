from faoyam.cli import app

app()
