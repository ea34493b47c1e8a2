"""Plain text that reads the same in chat and in a terminal (no markup, no tables)."""

from __future__ import annotations


def columns(rows: list[tuple[str, ...]], indent: str = "  ") -> str:
    """Rows as left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    return "\n".join(
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
