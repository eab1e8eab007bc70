"""``python -m monitor.cli``: the ``uproar`` command, as the tests and benchmarks start it."""

from monitor.cli import main

main()
