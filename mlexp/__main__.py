"""`python -m mlexp`: the same entrypoint as the `mlexp` console script."""

from mlexp.cli import main

main()
