"""`python -m dialer.fake_tabbly [options]`: the same as `dialer fake-tabbly`."""

import argparse
import sys

from dialer.fake_tabbly import __doc__ as package_doc
from dialer.fake_tabbly.command import add_arguments, run_from_args

parser = argparse.ArgumentParser(
    prog="fake-tabbly", description=(package_doc or "").partition("\n")[0]
)
add_arguments(parser)
sys.exit(run_from_args(parser.parse_args()))
