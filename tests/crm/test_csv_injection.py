"""The client CSV export never hands a spreadsheet a formula from Stripe-supplied text."""

import csv
import io

import pytest

from core.spreadsheet import FORMULA_TRIGGERS, spreadsheet_safe
from tests.support.staff import staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service", "anymail_outbox")]

NAMES = ['=HYPERLINK("http://evil.example","Click")', "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rReturn"]


def test_names_that_start_a_formula_are_exported_as_text(pipeline, client):
    for i, name in enumerate(NAMES):
        pipeline.pay_and_process(email=f"c{i}@example.com", name=name)
    pipeline.pay_and_process(email="plain@example.com", name="Plain Name")
    client.force_login(staff_user("Operations"))

    response = client.get("/admin/crm/client/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    names = {row["email"]: row["name"] for row in rows}
    assert names["plain@example.com"] == "Plain Name"
    exported = [names[f"c{i}@example.com"] for i in range(len(NAMES))]
    assert exported[:4] == ["'" + name for name in NAMES[:4]]
    # The CRM trims names, so the tab and CR cases arrive as plain text.
    assert exported[4:] == ["Tab", "Return"]
    assert all(not value.startswith(FORMULA_TRIGGERS) for value in exported), exported
    assert int(rows[0]["invoiced_value_minor_units"]) > 0  # numbers stay numbers


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@A1", "\tx", "\rx"])
def test_every_formula_trigger_is_quoted(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("value", ["Ada", "", "a=b", -250, 0, None])
def test_other_cells_pass_unchanged(value):
    assert spreadsheet_safe(value) == value
