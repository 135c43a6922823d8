"""The console's browser tests share the Playwright context of test_console_browser."""

from tests.console.test_console_browser import browser_context  # noqa: F401  (a fixture)
