"""`python -m orderhooks`: the same command line as the `orderhooks` script."""

from orderhooks.cli import main

if __name__ == "__main__":
    main()
