from mestudio.cli import run

run()
