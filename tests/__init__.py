"""The test suite: one directory per subpackage of `reference`, cross-cutting tests here.

Every directory is a package (this file and one `__init__.py` each), so test modules import
under their full names (`tests.nn.test_spline`) and two directories may hold files of the
same name; shared helpers come from `reference.testing`, shared fixtures from conftest.py.
"""
