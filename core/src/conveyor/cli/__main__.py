"""``python -m conveyor.cli``."""

from conveyor.cli import main

raise SystemExit(main())
