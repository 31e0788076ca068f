"""`python -m sandbox`: the same as `vb2po sandbox`."""
import sys

from sandbox.server import main

sys.exit(main())
