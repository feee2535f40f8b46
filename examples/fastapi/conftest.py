import os
import sys

os.environ.setdefault("USAGE_EXAMPLE_NO_APP", "1")
here = os.path.dirname(__file__)
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "bindings-python", "tests"))
