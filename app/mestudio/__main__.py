import sys

from mestudio.cli import main

sys.exit(main())
