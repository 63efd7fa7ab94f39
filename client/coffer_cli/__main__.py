from __future__ import annotations

from coffer_cli.cli import main

raise SystemExit(main())
