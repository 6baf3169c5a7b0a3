"""Cells for CSV files that staff open in a spreadsheet."""

# OWASP's CSV injection guidance: a cell starting with one of these is read as a formula by
# Excel, LibreOffice and Google Sheets (=HYPERLINK(...) becomes a live link, =cmd|... worse).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """The value, with a text cell that a spreadsheet would run as a formula prefixed by a quote
    (shown as text, never evaluated). Numbers and dates pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value
