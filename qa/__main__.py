"""``python -m qa`` and the ``qa`` console script."""

from qa.cli import main


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
