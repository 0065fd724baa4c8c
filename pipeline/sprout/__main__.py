from sprout.cli.main import app

app()
