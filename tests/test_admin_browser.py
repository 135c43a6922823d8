"""The admin in a real headless Chromium (Playwright): log in, add a customer through the form,
find it with the search box in the change list."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
IN_CI = bool(os.environ.get("CI"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not IN_CI,
        reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium; CI installs it in .ci/run)",
    ),
]

PASSWORD = "browser-test-password-1"


@pytest.fixture
def superuser(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("browser-admin", "admin@tollgate.test", PASSWORD)


@pytest.fixture
def page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls (fixtures,
    # assertions) are still plain synchronous code, which Django would otherwise refuse.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM) or shutil.which("chromium"), "CI must install chromium (.ci/run)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context()
        context.set_default_timeout(15_000)
        yield context.new_page()
        context.close()
        browser.close()


def test_log_in_add_a_customer_and_find_it(live_server, superuser, page):
    from customers.models import Customer, Organization

    Organization.current()
    Customer.objects.create(external_id="other-co", name="Someone Else", email="x@other.test")
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "browser-admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    assert "Customers" in page.inner_text("#content-main")

    page.goto(f"{live_server.url}/admin/customers/customer/add/")
    page.fill("#id_external_id", "browser-co")
    page.fill("#id_name", "Browser Company")
    page.fill("#id_email", "ap@browser.test")
    page.fill("#id_country", "de")
    page.fill("#id_currency", "EUR")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    assert "was added successfully" in page.inner_text("ul.messagelist")

    page.goto(f"{live_server.url}/admin/customers/customer/")
    page.fill("#searchbar", "browser.test")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    results = page.inner_text("#result_list")
    assert "browser-co" in results and "Browser Company" in results
    assert page.locator("#result_list tbody tr").count() == 1

    customer = Customer.live.get(external_id="browser-co")
    assert (customer.country, customer.currency) == ("DE", "EUR")  # saved through the service
    assert customer.sequential_id is not None


def test_a_refused_customer_shows_the_reason_in_the_form(live_server, superuser, page):
    from customers.models import Customer

    page.goto(f"{live_server.url}/admin/login/?next=/admin/customers/customer/add/")
    page.fill("#id_username", "browser-admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#id_external_id")
    page.fill("#id_external_id", "bad-country")
    page.fill("#id_country", "XX")
    page.click("input[name=_save]")
    page.wait_for_selector(".errorlist")

    assert "Not an ISO 3166" in page.inner_text("#content-main")
    assert not Customer.objects.filter(external_id="bad-country").exists()
