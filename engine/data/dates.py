"""The ``dates`` task: human-written dates in many formats → ISO ``YYYY-MM-DD``.

Calendar dates run from 1950-01-01 to 2049-12-31, so a two-digit year is never ambiguous
(50–99 → 19xx, 00–49 → 20xx); numeric formats are US order with slashes (``MM/DD/YY``) and
European order with dots (``DD.MM.YYYY``), never both with one separator. A seeded
permutation of the days holds out ``n_val`` calendar dates for validation: they never appear
in training, in any format (held out by date, not by string).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

FIRST = dt.date(1950, 1, 1)
DAYS = (dt.date(2049, 12, 31) - FIRST).days + 1  # 36,525
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def ordinal(d: int) -> str:
    """3 → '3rd', 11 → '11th', 22 → '22nd'."""
    suffix = "th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return f"{d}{suffix}"


def _fields(day: dt.date) -> dict:
    m = MONTHS[day.month - 1]
    w = WEEKDAYS[day.weekday()]
    return {"d": day.day, "dd": f"{day.day:02d}", "mm": f"{day.month:02d}", "y": day.year,
            "yy": f"{day.year % 100:02d}", "M": m, "Mon": m[:3], "m": m.lower(),
            "mon": m[:3].lower(), "MU": m.upper(), "W": w, "w": w[:3].lower(),
            "o": ordinal(day.day)}


FORMATS = (
    "{W}, {o} of {M} {y}",     # Tuesday, 3rd of March 1987
    "{mm}/{dd}/{yy}",          # 03/03/87
    "{m} {d} {y}",             # march 3 1987
    "{d} {Mon}. {y}",          # 3 Mar. 1987
    "{M} {d}, {y}",            # March 3, 1987
    "{d} {M} {y}",             # 3 March 1987
    "{mm}/{dd}/{y}",           # 03/03/1987
    "{dd}.{mm}.{y}",           # 03.03.1987
    "{y}-{mm}-{dd}",           # 1987-03-03
    "{W}, {M} {d}, {y}",       # Tuesday, March 3, 1987
    "{w} {d} {mon} {y}",       # tue 3 mar 1987
    "the {o} of {M}, {y}",     # the 3rd of March, 1987
    "{MU} {d}, {y}",           # MARCH 3, 1987
    "{dd} {Mon} {yy}",         # 03 Mar 87
    "{o} {M} {y}",             # 3rd March 1987
    "{y}/{mm}/{dd}",           # 1987/03/03
    "{Mon} {d} '{yy}",         # Mar 3 '87
    "{d}-{Mon}-{y}",           # 3-Mar-1987
)


def day_of(index: int) -> dt.date:
    return FIRST + dt.timedelta(days=int(index))


def render(day: dt.date, fmt: int) -> str:
    """*day* written in format number *fmt*."""
    return FORMATS[fmt].format(**_fields(day))


def iso(day: dt.date) -> str:
    return day.isoformat()


def split_days(n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train day indices, held-out day indices), disjoint, from a seeded permutation."""
    perm = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xDA7E]).permutation(DAYS)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def generate(n_train: int, n_val: int, seed: int) -> tuple[list, list]:
    """``(train pairs, validation pairs)`` of (human string, ISO string).

    Training draws *n_train* (day, format) pairs from the training days; validation writes
    each held-out day once, in a format drawn from the seed.
    """
    train_days, val_days = split_days(n_val, seed)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x7EA1])
    picks = rng.choice(train_days, size=n_train)
    fmts = rng.integers(0, len(FORMATS), size=n_train)
    train = [(render(day_of(i), f), iso(day_of(i))) for i, f in zip(picks, fmts)]
    vfmts = rng.integers(0, len(FORMATS), size=len(val_days))
    val = [(render(day_of(i), f), iso(day_of(i))) for i, f in zip(val_days, vfmts)]
    return train, val
