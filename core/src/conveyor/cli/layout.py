"""Tables that fit the terminal: key columns whole, the rest folded, nothing cut.

A table is laid out only if its key columns (ids, statuses, queue names) fit
whole with a readable minimum for every other column; the other columns then
fold onto more lines. Where even that does not fit (a narrow terminal, a very
long queue name), each row is printed as a block instead: its key cells on one
line, the rest below as ``header value`` pairs that wrap. Either way every
character reaches the screen; shortening is done before, with a visible ``…``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs
from rich.cells import cell_len
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "fit", "print_rows"]


@attrs.frozen
class Column:
    """One column. ``key`` columns (what a row is: id, queue, status) and ``whole``
    ones (short values such as ``1/5``) are never wrapped; the others fold down to
    ``least`` characters. In the block layout the key cells head each row."""

    header: str
    key: bool = False
    whole: bool = False
    least: int = 10
    justify: Literal["left", "right"] = "left"

    @property
    def folds(self) -> bool:
        """Whether the column's cells may wrap onto more lines."""
        return not (self.key or self.whole)


def _natural(column: Column, cells: Sequence[str]) -> int:
    return max([cell_len(column.header), *(cell_len(c) for c in cells)])


def _least(column: Column, natural: int) -> int:
    if not column.folds:
        return natural
    longest_word = max((cell_len(w) for w in column.header.split()), default=0)
    return min(natural, max(column.least, longest_word))


def fit(
    width: int, columns: Sequence[Column], rows: Sequence[Sequence[str]], gap: int
) -> list[int] | None:
    """Each column's width so the table is at most ``width`` wide, or ``None`` when the
    key columns and every other column's minimum do not fit together."""
    cells = [[row[i] for row in rows] for i in range(len(columns))]
    natural = [_natural(c, v) for c, v in zip(columns, cells, strict=True)]
    spaces = gap * (len(columns) - 1)
    if sum(natural) + spaces <= width:
        return natural
    widths = [_least(c, n) for c, n in zip(columns, natural, strict=True)]
    spare = width - spaces - sum(widths)
    if spare < 0:
        return None
    # Share what is left evenly among the folded columns, each up to its natural width.
    growing = [i for i, c in enumerate(columns) if c.folds and widths[i] < natural[i]]
    while spare > 0 and growing:
        share = max(1, spare // len(growing))
        for i in list(growing):
            extra = min(share, natural[i] - widths[i], spare)
            widths[i] += extra
            spare -= extra
            if widths[i] >= natural[i]:
                growing.remove(i)
            if spare == 0:
                break
    return widths


def print_rows(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    header: bool = True,
    gap: int = 1,
) -> None:
    """Print ``rows`` as a table that fits ``console``, else as one block per row."""
    widths = fit(console.width, columns, rows, gap)
    if widths is None:
        _blocks(console, columns, rows, title)
        return
    table = Table(
        title=title,
        title_justify="left",
        box=None,
        show_header=header,
        header_style="bold",
        pad_edge=False,
        padding=(0, gap, 0, 0),
    )
    for column, size in zip(columns, widths, strict=True):
        table.add_column(
            column.header,
            width=size,
            no_wrap=not column.folds,
            overflow="fold",
            justify=column.justify,
        )
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # data, never rich markup
    console.print(table)


def _blocks(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None
) -> None:
    if title:
        console.print(Text(title, style="italic"))
    for row in rows:
        keys = [cell for column, cell in zip(columns, row, strict=True) if column.key]
        rest = [
            f"{column.header} {cell}" if column.header else cell
            for column, cell in zip(columns, row, strict=True)
            if not column.key
        ]
        # Soft wrap: a key longer than the screen is wrapped by the terminal, never cut.
        console.print(Text("  ".join(keys or row[:1]), style="bold"), soft_wrap=True)
        if rest:
            console.print(Padding(Text(" · ".join(rest), overflow="fold"), (0, 0, 0, 2)))
