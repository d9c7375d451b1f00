"""`python -m orderhooks.config`: print or update the settings table of the docs."""

from orderhooks.config.reference import main

main()
