import pytest

# helpers.py holds asserts (read_events...): rewritten as in the test modules, for their messages
pytest.register_assert_rewrite("tests.helpers")
