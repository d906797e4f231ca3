"""Markdown tables, the one way every report here writes them."""

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], numeric_from: int = 1) -> str:
    """A GitHub table; columns from `numeric_from` on are right-aligned. Cells are str()-ed, so
    callers format numbers (and write "" or "-" for a missing value) themselves."""
    align = ["---"] * numeric_from + ["---:"] * (len(header) - numeric_from)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
