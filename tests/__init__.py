"""Static and workflow tests of the pipeline (the package's unit tests are in python/tests).

A package so that tests/conftest.py is imported as ``tests.conftest`` and does not take the module
name ``conftest`` from python/tests/conftest.py, whose helpers those tests import by that name.
"""
