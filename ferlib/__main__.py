"""``python -m ferlib`` (also ``accelerate launch -m ferlib`` and ``torchrun -m ferlib``)."""

from ferlib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
