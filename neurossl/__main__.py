"""``python -m neurossl`` runs the command-line interface."""

from neurossl.cli import main

raise SystemExit(main())
