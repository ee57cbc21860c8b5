"""The TOML reader the manifest and routes use: the standard library's from Python 3.11, `tomli` (the
same parser, declared as a dependency for older Pythons) on 3.10."""

import sys

if sys.version_info >= (3, 11):
    from tomllib import TOMLDecodeError, loads
else:
    from tomli import TOMLDecodeError, loads

__all__ = ["TOMLDecodeError", "loads"]
