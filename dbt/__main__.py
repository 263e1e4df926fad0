"""``python -m dbt`` is the ``dbt`` command."""

import sys

from dbt.cli import main

sys.exit(main())
