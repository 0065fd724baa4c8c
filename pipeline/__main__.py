from sprout.cli import app

app()
