"""``python -m bot``: the command line (bot/cli/main.py)."""

from bot.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
