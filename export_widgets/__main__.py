"""``python -m export_widgets`` runs the ``export-widgets`` command."""

from .cli import main

raise SystemExit(main())
