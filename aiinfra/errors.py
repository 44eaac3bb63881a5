"""The error a subcommand raises for bad input that argparse cannot catch (a file that does not exist, say).

`aiinfra.cli.main` prints it as one line and exits 2. It lives in its own module so that subcommands never
import the command line that imports them.
"""


class UsageError(Exception):
    """Bad command-line input that argparse cannot catch."""
