"""Longest common subsequence for the LCS command, bit-parallel.

Redis fills an (|a|+1) x (|b|+1) table of integers and walks it back. In
Python that table would cost seconds for a few thousand bytes, so each row is
kept as one big integer instead (Hyyrö's bit-parallel LCS): bit ``k`` of a row
is clear where the LCS length grows between prefixes of length ``k`` and
``k+1``, so ``dp(i, j)`` is ``j`` minus the set bits below ``j``. The rows run
over the shorter string and the bits over the longer one, which keeps the
Python loop short; the walk back then follows Redis's exact rule (on a tie,
step back in ``b``), so the chosen matches are the ones Redis reports.
"""

from __future__ import annotations

# byte value -> translation table that maps that byte to '1' and all others to '0'
_ONE_BYTE_TABLES: dict[int, bytes] = {}


def _match_masks(s: bytes) -> dict[int, int]:
    """For each byte value in ``s``: an int whose bit k is set where s[k] is it."""
    masks = {}
    for c in set(s):
        table = _ONE_BYTE_TABLES.get(c)
        if table is None:
            table = _ONE_BYTE_TABLES[c] = bytes(0x31 if x == c else 0x30 for x in range(256))
        masks[c] = int(s.translate(table)[::-1], 2)  # base 2: linear, no digit limit
    return masks


def _rows(rows_over: bytes, bits_over: bytes, keep: bool) -> list[int]:
    full = (1 << len(bits_over)) - 1
    masks = _match_masks(bits_over)
    v = full
    rows = [v]
    get = masks.get
    for c in rows_over:
        u = v & get(c, 0)
        v = ((v + u) | (v - u)) & full
        if keep:
            rows.append(v)
    if not keep:
        rows.append(v)
    return rows


def lcs_length(a: bytes, b: bytes) -> int:
    """Length of the longest common subsequence of ``a`` and ``b``."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if not short:
        return 0
    last = _rows(short, long_, keep=False)[-1]
    return len(long_) - last.bit_count()


class LcsTable:
    """``dp(i, j)``: LCS length of ``a[:i]`` and ``b[:j]``, from packed rows."""

    def __init__(self, a: bytes, b: bytes):
        self.a, self.b = a, b
        self.transposed = len(a) > len(b)
        if self.transposed:
            self.rows = _rows(b, a, keep=True)
        else:
            self.rows = _rows(a, b, keep=True)

    def dp(self, i: int, j: int) -> int:
        if self.transposed:
            i, j = j, i
        return j - (self.rows[i] & ((1 << j) - 1)).bit_count()

    def walk(self, minmatchlen: int = 0):
        """Walk back from the end as Redis does: returns the LCS bytes and
        its matching ranges ``(a_start, a_end, b_start, b_end)``, last first,
        keeping only ranges of at least ``minmatchlen`` bytes.

        The walk runs on (row, col) = (i, j), or (j, i) when transposed, and
        keeps the two rows' prefix popcounts up to date as it steps, so a
        step costs O(1) and only a change of row costs O(row length)."""
        a, b, rows, t = self.a, self.b, self.rows, self.transposed
        i, j = len(a), len(b)
        r, c = (j, i) if t else (i, j)
        nbytes = (c + 7) // 8

        def prefix_pop(k: int, upto: int) -> int:
            return (rows[k] & ((1 << upto) - 1)).bit_count()

        length = c - prefix_pop(r, c)
        out = bytearray(length)
        pos = length
        matches = []
        open_ = False
        a_start = a_end = b_start = b_end = 0
        if r > 0 and c > 0:
            cur, up = rows[r].to_bytes(nbytes, "little"), rows[r - 1].to_bytes(nbytes, "little")
            p_cur, p_up = prefix_pop(r, c), prefix_pop(r - 1, c)
        while r > 0 and c > 0:
            emit = False
            k = c - 1
            cur_bit = cur[k >> 3] >> (k & 7) & 1
            if a[i - 1] == b[j - 1]:
                out[pos - 1] = a[i - 1]
                if open_:  # a match right after a match always extends the range
                    a_start -= 1
                    b_start -= 1
                else:
                    a_start = a_end = i - 1
                    b_start = b_end = j - 1
                    open_ = True
                emit = a_start == 0 or b_start == 0
                pos -= 1
                step_col = step_row = True
            else:
                along_col = k - p_cur + cur_bit  # dp one step back along the columns
                along_row = c - p_up             # dp one step back along the rows
                if t:  # i is the column: Redis steps i back when dp(i-1, j) > dp(i, j-1)
                    step_col = along_col > along_row
                else:
                    step_col = not along_row > along_col
                step_row = not step_col
                emit = open_
            if step_col:
                p_cur -= cur_bit
                p_up -= up[k >> 3] >> (k & 7) & 1
                c = k
            if step_row:
                r -= 1
                cur, p_cur = up, p_up
                if r > 0:
                    up = rows[r - 1].to_bytes(nbytes, "little")
                    p_up = prefix_pop(r - 1, c)
            i, j = (c, r) if t else (r, c)
            if emit:
                if a_end - a_start + 1 >= minmatchlen:
                    matches.append((a_start, a_end, b_start, b_end))
                open_ = False
        return bytes(out), matches
