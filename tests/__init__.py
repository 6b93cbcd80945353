"""The test suite: ``tests.helpers`` holds the shared data builders, ``tests/conftest.py`` the fixtures."""
