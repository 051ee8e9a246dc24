"""Allow ``python -m secops``."""

from secops.cli.main import main

if __name__ == "__main__":
    main()
