"""`python -m concord` runs the `concord` command."""

from concord.app.cli import main

if __name__ == "__main__":
    main(prog_name="concord")
