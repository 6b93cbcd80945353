"""``python -m benchmarks``: the one-command suite (see :mod:`benchmarks.suite` and ``docs/benchmarks.md``)."""

from benchmarks.suite import main

raise SystemExit(main())
