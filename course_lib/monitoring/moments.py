"""Moments of many tensors in few calls: the numbers behind every GradientMonitor statistic.

`_moments` turns a pass's activations, gradients and weights into rows of (count, sum, sum of
squares, centred sum of squares) in float64 with about two PyTorch calls per tensor and one
conversion to NumPy, and measures a row again where float32 would not be exact to ~1e-6.
"""

import numpy as np
import torch

_FLUSHED = 1.2e-30  # float32 sums of squares below n * this may have lost squares to underflow (1.2e-38)
_FLOATS = (torch.float32, torch.float64)
_STACK = 4096  # tensors of one shape up to this size are stacked and reduced together
_CHUNK = 1 << 16  # BLAS dots over at most this many float32 values stay within ~4e-7 of the exact sum


def _sum_squares(flat: torch.Tensor) -> torch.Tensor:
    """sum(x**2) of a flat float32 tensor in float32, in chunks whose dots stay precise."""
    if flat.numel() <= _CHUNK:
        return torch.dot(flat, flat)
    return torch.stack([torch.dot(part, part) for part in flat.split(_CHUNK)]).sum()


def _reductions(t: torch.Tensor, *, columns: bool = False,
                sums: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The float32 sum (or column sums, over all but the last dim) and sum of squares of one tensor, as
    `_moments` adds them up; hooks call it while the tensor is still in the cache."""
    t = t if t.dtype in _FLOATS else t.float()
    total = (t.reshape(-1, t.shape[-1]).sum(0) if columns else t.sum()) if sums else None
    return total, _sum_squares(t.reshape(-1))


def _moments(tensors=(), matrices=(), norms=(), *, columns=frozenset(),
             done=None) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Rows (count, sum, sum of squares, sum of squared deviations from the mean) in float64: one per
    tensor, then one per row of each matrix, then one per tensor of `norms` (of which only the sum
    of squares is needed); and the column sums (over all but the last dim) of the tensors whose
    index is in `columns` (a ReLU unit is dead where its column sums to 0). `done`: the `_reductions`
    of some of them, by index (tensors first, then norms), computed earlier.

    Fast path, about two calls per tensor and one conversion to NumPy: float32 sums (cascade sum,
    BLAS dots), small tensors of one shape stacked and reduced together (on CPU a foreach call costs
    as much per tensor as a call of its own, and a copy of large ones as much as their reduction),
    and the centred sum as sum(x**2) - sum(x)**2 / n. A row is measured again where that is not
    exact to ~1e-6: centred in float32 when its mean is large against its spread (the subtraction
    would cancel), and in float64 when its float32 squares may have underflowed (values below
    ~1e-19, see `seeding.flush_denormals`) or overflowed, so that a vanishing gradient reads as its
    size, not 0.
    """
    items = [t if t.dtype in _FLOATS else t.float() for t in (*tensors, *norms)]
    # row of each item: tensors, then the matrices' rows, then norms
    first = len(tensors) + sum(len(matrix) for matrix in matrices)
    where = list(range(len(tensors))) + list(range(first, first + len(norms)))
    n = np.array([t.numel() for t in tensors] + [m.shape[1] for m in matrices for _ in range(len(m))]
                 + [t.numel() for t in norms], dtype=float)
    if not len(n):
        return np.zeros((0, 4)), {}
    done = done or {}
    groups, singles = _stack_groups(items, len(tensors), columns, done)
    parts, layout = [], []  # float tensors concatenated for the one conversion; (row indices, target)
    _reduce_stacked(groups, items, where, parts, layout)
    wide = _reduce_singles(singles, items, len(tensors), columns, done, where, parts, layout)
    _reduce_matrices(matrices, len(tensors), parts, layout)
    values = torch.cat(parts).double().numpy()  # the one conversion
    sums, found = _unpack(values, layout, wide, items, len(n))
    s1, s2 = sums[1], sums[2]
    out = np.stack([n, s1, s2, s2 - s1 * s1 / np.maximum(n, 1)], axis=1)
    _measure_again(out, n, s1, s2, lambda r: _flat_row(r, items, where, len(tensors), matrices))
    return out, found


def _stack_groups(items: list, tensor_count: int, columns, done: dict) -> tuple[dict[tuple, list[int]], list[int]]:
    """The small items by (shape, dtype, whether their sums are needed), each group to be stacked and
    reduced together; and the others (large, with column sums, or already reduced), one by one."""
    groups: dict[tuple, list[int]] = {}
    singles = []
    for i, t in enumerate(items):
        if t.numel() <= _STACK and i not in columns and i not in done:
            groups.setdefault((t.shape, t.dtype, i < tensor_count), []).append(i)
        else:
            singles.append(i)
    return groups, singles


def _reduce_stacked(groups: dict, items: list, where: list[int], parts: list, layout: list) -> None:
    """Each group's sums (where needed) and sums of squares, two calls per group, appended to `parts`."""
    for (_, _, sums), members in groups.items():
        block = torch.stack([items[i].reshape(-1) for i in members]) if len(members) > 1 else \
            items[members[0]].reshape(1, -1)
        if sums:
            parts.append(block.sum(1))
            layout.append(([where[i] for i in members], 1))
        parts.append(torch.linalg.vector_norm(block, dim=1).square())  # no temporary as large as the block
        layout.append(([where[i] for i in members], 2))


def _reduce_singles(singles: list[int], items: list, tensor_count: int, columns, done: dict, where: list[int],
                    parts: list, layout: list) -> list[int]:
    """The other items' sums of squares, sums and column sums (taken from `done` where there), appended to
    `parts`; returns the items whose column sums come last, in order."""
    if not singles:
        return []
    reduced = [done[i] if i in done else _reductions(items[i], columns=i in columns, sums=i < tensor_count)
               for i in singles]
    parts.append(torch.stack([squares for _, squares in reduced]))
    layout.append(([where[i] for i in singles], 2))
    plain = [k for k, i in enumerate(singles) if i < tensor_count and i not in columns]
    if plain:
        parts.append(torch.stack([reduced[k][0] for k in plain]))
        layout.append(([where[singles[k]] for k in plain], 1))
    wide = [k for k, i in enumerate(singles) if i in columns]
    if wide:  # one float32 sum per column, added up in float64 by `_unpack`
        parts.append(torch.cat([reduced[k][0] for k in wide]))
    return [singles[k] for k in wide]


def _reduce_matrices(matrices, first_row: int, parts: list, layout: list) -> None:
    """The sums and sums of squares of each matrix row (rows from `first_row` on), appended to `parts`."""
    at = first_row
    for matrix in matrices:
        rows = list(range(at, at + len(matrix)))
        parts += [matrix.sum(1), torch.linalg.vector_norm(matrix, dim=1).square()]
        layout += [(rows, 1), (rows, 2)]
        at += len(matrix)


def _unpack(values: np.ndarray, layout: list, wide: list[int], items: list,
            count: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The converted values put back in place: sums (rows 1 and 2: sum, sum of squares) of the `count`
    rows, and the column sums of the `wide` items (each also added up into its sum)."""
    sums = np.zeros((3, count))
    at = 0
    for rows, target in layout:
        sums[target, rows] = values[at:at + len(rows)]
        at += len(rows)
    found = {}
    for i in wide:
        width = items[i].shape[-1]
        found[i] = values[at:at + width]
        sums[1, i] = found[i].sum()
        at += width
    return sums, found


def _flat_row(r: int, items: list, where: list[int], tensor_count: int, matrices) -> torch.Tensor:
    """The values of row `r` of `_moments`, flat."""
    if r in where:
        return items[where.index(r)].reshape(-1)
    r -= tensor_count
    for matrix in matrices:
        if r < len(matrix):
            return matrix[r]
        r -= len(matrix)


def _measure_again(out: np.ndarray, n: np.ndarray, s1: np.ndarray, s2: np.ndarray, row) -> None:
    """Measure again, in place, the rows of `out` whose float32 sums are not exact to ~1e-6 (`_moments`
    says when); `row(r)` gives row r's values."""
    unsafe = ~(np.isfinite(s2) & (s2 >= n * _FLUSHED)) & (n > 0)
    cancels = ~unsafe & (out[:, 3] < 0.5 * s2)  # mean**2 > variance: the difference loses digits
    for i in np.flatnonzero(unsafe | cancels):
        flat = row(i)
        if cancels[i]:  # about the mean rounded to float32, then corrected for that rounding
            deviation = flat - float(s1[i] / n[i])
            offset, squares = float(deviation.sum()), float(_sum_squares(deviation))
            out[i, 3] = squares - offset * offset / n[i]
            if np.isfinite(squares) and squares >= n[i] * _FLUSHED:
                continue
        x = flat.double()
        out[i, 1] = float(x.sum())
        deviation = x - out[i, 1] / n[i]
        out[i, 2], out[i, 3] = float(torch.dot(x, x)), float(torch.dot(deviation, deviation))


def _one_array(values: list) -> np.ndarray:
    """Numbers, 0-d tensors or one 1-d tensor of them, as one float64 array (tensors of one dtype
    converted in one call)."""
    if len(values) == 1 and isinstance(values[0], torch.Tensor) and values[0].dim() == 1:
        return values[0].double().numpy()
    if all(isinstance(v, torch.Tensor) for v in values) and len({v.dtype for v in values}) == 1:
        return torch.stack(values).double().numpy()
    return np.array([float(v) for v in values], dtype=float)


def _std(moments: np.ndarray) -> np.ndarray:
    """Sample std from `_moments` rows."""
    return np.sqrt(np.maximum(moments[:, 3], 0.0) / np.maximum(moments[:, 0] - 1, 1))
