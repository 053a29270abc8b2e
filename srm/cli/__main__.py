"""``python -m srm.cli``: how job processes and ``accelerate launch -m srm.cli`` run it."""

from srm.cli import main

main()
