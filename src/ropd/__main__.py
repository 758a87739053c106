"""`python -m ropd` is the same as the `ropd` command (needed for `accelerate launch -m ropd`)."""

from ropd.cli import main

if __name__ == "__main__":
    main()
