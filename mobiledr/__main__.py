"""``python -m mobiledr`` (also what ``torchrun -m mobiledr`` runs)."""

from mobiledr.cli import main

if __name__ == "__main__":
    main()
