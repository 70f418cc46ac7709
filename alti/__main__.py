"""``python -m alti …``: the ``alti`` command, where its script is not installed."""

from alti.cli import main

raise SystemExit(main())
