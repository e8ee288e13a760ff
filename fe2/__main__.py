import sys

from fe2.cli import main

sys.exit(main())
