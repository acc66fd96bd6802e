"""Redis's ``long double`` arithmetic (INCRBYFLOAT, HINCRBYFLOAT), exactly.

Redis parses both operands with ``strtold``, adds them as C ``long double``
and prints the sum with ``%.17Lf`` minus trailing zeros. On x86-64, where
Redis is built almost everywhere, that type is the x87 80-bit format: a
64-bit significand and a 15-bit exponent, so sums up to ~1.19e4932 are legal
and print as thousands of digits, and 10.5 + 0.1 prints as ``10.6``. Python's
float would round differently and overflow at 1.8e308. Values are therefore
exact ``Fraction``s rounded to that format after every step (round half to
even, subnormals included), which reproduces Redis's bytes on x86-64 on any
machine Fjord runs on.

``parse`` returns None for what Redis rejects as "not a valid float" (and
``INF``/``-INF`` for infinities, which only the sum's check rejects).
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

PRECISION = 64          # significand bits of the x87 extended format
EMIN = -16382           # smallest normal binary exponent
EMAX = 16383            # largest binary exponent; 2**(EMAX+1) overflows
MAX_CHARS = 5 * 1024    # Redis refuses to parse strings this long or longer
INF = float("inf")

_DEC = re.compile(rb"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?")
_INF = re.compile(rb"([+-]?)(?:inf|infinity)", re.IGNORECASE)
_HUGE_EXP = 10**7       # any exponent beyond this over/underflows outright
_CHUNK = 10**4000       # int -> str in pieces (Python caps str(int) at 4300 digits)

Value = Fraction | float


def round_ld(x: Fraction) -> Value:
    """``x`` rounded to the nearest long double (ties to even); +-INF on overflow."""
    if not x:
        return Fraction(0)
    n, d = abs(x.numerator), x.denominator
    e = n.bit_length() - d.bit_length()
    if (n << -e if e < 0 else n) < (d << e if e > 0 else d):
        e -= 1  # now 2**e <= |x| < 2**(e+1)
    q = max(e, EMIN) - PRECISION + 1  # exponent of the last significand bit
    if q >= 0:
        d <<= q
    else:
        n <<= -q
    m, rem = divmod(n, d)
    if 2 * rem > d or (2 * rem == d and m & 1):
        m += 1
    if m.bit_length() + q - 1 > EMAX:
        return INF if x > 0 else -INF
    if x < 0:
        m = -m
    return Fraction(m << q) if q >= 0 else Fraction(m, 1 << -q)


def parse(b: bytes) -> Value | None:
    """The long double ``strtold`` reads from all of ``b``, or None when
    Redis rejects it (spaces, junk, NaN, out of range, empty, too long)."""
    if not b or len(b) >= MAX_CHARS:
        return None
    m = _DEC.fullmatch(b)
    if m is not None:
        sign, whole, frac, exp = m.groups()
        if not whole and not frac:
            return None
        digits = (whole + (frac or b"")).lstrip(b"0")
        exp10 = _exponent(exp) - len(frac or b"")
        if not digits:
            return Fraction(0)
        magnitude = exp10 + len(digits)  # 10**(magnitude-1) <= |value| < 10**magnitude
        if magnitude > 4934:
            return None
        if magnitude < -4952:
            return None
        exact = Fraction(Decimal(digits.decode())) * Fraction(10) ** exp10
        return _checked(round_ld(-exact if sign == b"-" else exact))
    m = _HEX.fullmatch(b)
    if m is not None:
        sign, whole, frac, exp = m.groups()
        if not whole and not frac:
            return None
        mant = int((whole + (frac or b"")) or b"0", 16)
        exp2 = _exponent(exp) - 4 * len(frac or b"")
        if not mant:
            return Fraction(0)
        top = exp2 + mant.bit_length()
        if top > EMAX + 2 or top < EMIN - PRECISION - 2:
            return None
        exact = Fraction(mant) * Fraction(2) ** exp2
        return _checked(round_ld(-exact if sign == b"-" else exact))
    m = _INF.fullmatch(b)
    if m is not None:
        return -INF if m.group(1) == b"-" else INF
    return None


def _exponent(exp: bytes | None) -> int:
    if not exp:
        return 0
    sign = -1 if exp[:1] == b"-" else 1
    digits = exp.lstrip(b"+-").lstrip(b"0") or b"0"
    if len(digits) > 8:
        return sign * _HUGE_EXP
    return sign * int(digits)


def _checked(v: Value) -> Value | None:
    # strtold reports ERANGE for overflow and for underflow to zero; Redis
    # then refuses the string (a non-zero subnormal result is accepted).
    if v == INF or v == -INF or not v:
        return None
    return v


def add(a: Value, b: Value) -> Value | None:
    """``a + b`` as long double; None when the sum is NaN or infinite."""
    if type(a) is float or type(b) is float:
        return None  # an infinite operand makes an infinite or NaN sum
    v = round_ld(a + b)
    return None if type(v) is float else v


def format_human(v: Fraction) -> bytes:
    """``%.17Lf`` with trailing zeros (and a bare '.') removed; ``-0`` is ``0``."""
    neg = v < 0
    scaled = abs(v) * 10**17
    q, rem = divmod(scaled.numerator, scaled.denominator)
    if 2 * rem > scaled.denominator or (2 * rem == scaled.denominator and q & 1):
        q += 1
    whole, frac = divmod(q, 10**17)
    s = _int_str(whole)
    if frac:
        s += "." + ("%017d" % frac).rstrip("0")
    if neg and s != "0":
        s = "-" + s
    return s.encode()


def _int_str(n: int) -> str:
    if n < _CHUNK:
        return str(n)
    hi, lo = divmod(n, _CHUNK)
    return _int_str(hi) + str(lo).zfill(4000)
