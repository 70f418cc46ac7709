"""alti-tui: a terminal explorer for ALTI and the comparison methods."""
