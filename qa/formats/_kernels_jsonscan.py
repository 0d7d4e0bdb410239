"""The byte scanner behind :mod:`qa.formats._jsonscan` (numba only).

One resumable pass over a JSON value's bytes, a block at a time, that finds where each child of the
value (each member of an object, each element of an array) starts and ends, without parsing the
children: strings (with their escapes) and nesting are tracked so that a ``,`` or ``]`` inside a child
is not taken for the end of it. The structure around the children (``{``, keys, ``:``, ``,``, the
closing bracket, nothing but whitespace after it) is checked here; what is inside a child is checked by
the JSON parser that reads it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# state slots
S_PHASE = 0        # 0 before the value, 1 inside it (depth 1), 2 inside a child container, 3 after it
S_ROOT = 1         # 1 object, 2 array
S_EXPECT = 2       # what comes next at depth 1 (see the E_ constants)
S_DEPTH = 3        # nesting depth inside a child container (1 = the child itself)
S_STRING = 4       # 0 not in a string, 1 in a key, 2 in a child string, 3 in a string inside a child
S_ESCAPE = 5       # the previous byte was a backslash inside a string
S_START = 6        # the current child's first byte
S_KEY_START = 7    # the current member's key span
S_KEY_END = 8
S_ERROR = 9        # the offset of the first byte that breaks the structure, or -1
S_SCALAR = 10      # 1 while in a number or literal child
S_NEXT = 11        # how many bytes of the last block the last call consumed
SLOTS = 12

E_KEY_OR_CLOSE = 0   # after "{"
E_KEY = 1            # after "," in an object
E_COLON = 2
E_VALUE = 3          # after ":" or "," in an array
E_VALUE_OR_CLOSE = 4 # after "["
E_COMMA_OR_CLOSE = 5


def new_state() -> np.ndarray:
    """A fresh scanner state (int64 slots)."""
    state = np.zeros(SLOTS, np.int64)
    state[S_KEY_START] = -1
    state[S_KEY_END] = -1
    state[S_ERROR] = -1
    return state


@njit(cache=True, nogil=True)
def _scan(buf, base, state, out):
    """Scan ``buf`` (uint8, the bytes at offsets ``base`` ...) and write each child that ends in it.

    ``state`` (int64, :data:`SLOTS`) carries the scan from one block to the next; ``out`` (int64,
    ``(m, 4)``) receives ``(start, end, key start, key end)`` per child (key -1 for array elements),
    offsets absolute and ``end`` exclusive. Returns the number of rows written; stops early (and sets
    ``state[S_ERROR]``) at the first byte that breaks the structure. A row is written when its child
    ends. When ``out`` fills up, ``state[S_NEXT]`` says how many bytes were consumed (call again with the
    rest); otherwise it is ``len(buf)``.
    """
    n = 0
    m = out.shape[0]
    size = buf.shape[0]
    phase = state[S_PHASE]
    root = state[S_ROOT]
    expect = state[S_EXPECT]
    depth = state[S_DEPTH]
    string = state[S_STRING]
    escape = state[S_ESCAPE]
    start = state[S_START]
    key_start = state[S_KEY_START]
    key_end = state[S_KEY_END]
    scalar = state[S_SCALAR]
    error = -1
    i = 0
    while i < size and n < m:
        c = buf[i]
        if string != 0:
            if escape == 1:
                escape = 0
            elif c == 92:  # backslash
                escape = 1
            elif c == 34:  # closing quote
                if string == 1:
                    key_end = base + i + 1
                    expect = E_COLON
                elif string == 2:
                    out[n, 0] = start
                    out[n, 1] = base + i + 1
                    out[n, 2] = key_start
                    out[n, 3] = key_end
                    n += 1
                    expect = E_COMMA_OR_CLOSE
                string = 0
            i += 1
            continue
        if phase == 2:  # inside a child container: only strings and brackets matter
            if c == 34:
                string = 3
            elif c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    out[n, 0] = start
                    out[n, 1] = base + i + 1
                    out[n, 2] = key_start
                    out[n, 3] = key_end
                    n += 1
                    phase = 1
                    expect = E_COMMA_OR_CLOSE
            i += 1
            continue
        if scalar == 1:
            if not (c == 32 or c == 9 or c == 10 or c == 13 or c == 44 or c == 93 or c == 125):
                i += 1
                continue
            out[n, 0] = start
            out[n, 1] = base + i
            out[n, 2] = key_start
            out[n, 3] = key_end
            n += 1
            scalar = 0
            expect = E_COMMA_OR_CLOSE
            # the delimiter is handled below
        if c == 32 or c == 9 or c == 10 or c == 13:
            i += 1
            continue
        if phase == 0:
            if c == 123:
                root = 1
                expect = E_KEY_OR_CLOSE
            elif c == 91:
                root = 2
                expect = E_VALUE_OR_CLOSE
            else:
                error = base + i
                break
            phase = 1
        elif phase == 3:
            error = base + i
            break
        elif expect == E_KEY_OR_CLOSE or expect == E_KEY:
            if c == 34:
                string = 1
                key_start = base + i
            elif c == 125 and expect == E_KEY_OR_CLOSE:
                phase = 3
            else:
                error = base + i
                break
        elif expect == E_COLON:
            if c == 58:
                expect = E_VALUE
            else:
                error = base + i
                break
        elif expect == E_VALUE or expect == E_VALUE_OR_CLOSE:
            if c == 93 and expect == E_VALUE_OR_CLOSE:
                phase = 3
            elif c == 44 or c == 93 or c == 125 or c == 58:
                error = base + i
                break
            else:
                if root == 2:
                    key_start = -1
                    key_end = -1
                start = base + i
                if c == 123 or c == 91:
                    phase = 2
                    depth = 1
                elif c == 34:
                    string = 2
                else:
                    scalar = 1
        else:  # E_COMMA_OR_CLOSE
            if c == 44:
                expect = E_KEY if root == 1 else E_VALUE
            elif (c == 125 and root == 1) or (c == 93 and root == 2):
                phase = 3
            else:
                error = base + i
                break
        i += 1
    state[S_PHASE] = phase
    state[S_ROOT] = root
    state[S_EXPECT] = expect
    state[S_DEPTH] = depth
    state[S_STRING] = string
    state[S_ESCAPE] = escape
    state[S_START] = start
    state[S_KEY_START] = key_start
    state[S_KEY_END] = key_end
    state[S_SCALAR] = scalar
    state[S_ERROR] = error
    state[S_NEXT] = i
    return n
