"""PyInstaller entry point: run the `prodpanel` command group.

A separate script rather than app/cli.py itself, so that app.cli is imported once under its real
name and subcommands that other modules attach to `app.cli.main` are all present in the binary.
"""

from app.cli import main

if __name__ == "__main__":
    main()
