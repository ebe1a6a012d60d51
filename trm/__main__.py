import sys

from trm.cli import main

sys.exit(main())
