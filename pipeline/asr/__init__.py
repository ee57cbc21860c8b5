"""Speech recognition: one loop and options (`core`), one module per engine behind it."""
