"""``python -m ferlib.results RUN_DIR RECORD.json ...``: record a ``ferlib train`` run in ``book/results/``.

The command keeps this short name; the code is :mod:`ferlib.book.results`.
"""

from ferlib.book.results import main

if __name__ == "__main__":
    raise SystemExit(main())
