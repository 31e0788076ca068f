"""The Visma Business columns vb2po reads and writes, as one source for DDL and queries.

Names and types follow ../shared/domain/visma-business.md. Dates are int yyyymmdd, times int
hhmm (minute precision), `ChTmms` milliseconds since midnight, all server-local time.
Which free fields `CustTr` really has is unconfirmed: the marker column is always checked
against the live table (`vb2po.visma.identifiers`), never trusted from this list.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ColumnType(Enum):
    INT = "int"
    MONEY = "money"  # DECIMAL(28,6) in Visma
    TEXT = "text"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    length: int = 0  # for TEXT
    default: object = 0


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def _int(name: str) -> Column:
    return Column(name, ColumnType.INT, default=0)


def _text(name: str, length: int) -> Column:
    return Column(name, ColumnType.TEXT, length, default="")


CHANGE_COLUMNS = ("ChDt", "ChTm", "ChTmms", "ChUsr", "CreDt", "CreTm", "CreUsr")

CUSTTR = Table(
    "CustTr",
    (
        _int("JNo"), _int("EntNo"), _int("CustNo"), _int("VoNo"), _int("VoDt"), _int("VoTp"),
        _text("Txt", 60), Column("Am", ColumnType.MONEY, default=0), _text("InvoNo", 20),
        _int("Cur"), Column("CurAm", ColumnType.MONEY, default=0), _int("DueDt"),
        _int("CreDt"), _int("CreTm"), _text("CreUsr", 10),
        _int("ChDt"), _int("ChTm"), _int("ChTmms"), _text("ChUsr", 10),
        _int("Gr"), _int("Gr2"), _int("Gr3"), _int("Gr4"), _text("Inf", 60), _text("Inf2", 60),
    ),
    key=("JNo", "EntNo"),
)

ACTOR = Table(
    "Actor",
    (
        _int("ActNo"), _int("CustNo"), _text("Nm", 60), _int("CrSusp"),
        Column("CrLmt", ColumnType.MONEY, default=0),
        _int("CreDt"), _int("CreTm"), _int("ChDt"), _int("ChTm"), _int("ChTmms"),
        _int("Gr"), _int("Gr2"), _text("Inf", 60), _text("Inf7", 60),
    ),
    key=("ActNo",),
)

# The company's currency register (public Visma Business queries join `Cur.CurNo` to a row's
# `Cur` and read `Cur.ISO`); a company database without it falls back to ISO 4217 numeric codes.
CUR = Table("Cur", (_int("CurNo"), _text("ISO", 3)), key=("CurNo",))

# Visma's free fields ("Gr" integers, "Inf" texts): the only columns the processed marker may use.
# Which of them CustTr really has is unconfirmed, so the live table is always asked as well.
FREE_INTEGER_FIELDS = ("Gr", *(f"Gr{n}" for n in range(2, 13)))
FREE_TEXT_FIELDS = ("Inf", *(f"Inf{n}" for n in range(2, 9)))
FREE_FIELDS = FREE_INTEGER_FIELDS + FREE_TEXT_FIELDS
FREE_TEXT_LENGTH = 60
