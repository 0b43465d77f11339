"""nbval plugin: printed floats compared within the cross-host tolerance, all other text exact.

nbval compares cell outputs as strings, so a number printed to four digits flips in its last
digit on another CPU (`-9.763e+00` vs `-9.762e+00`) and fails a good notebook. With this
plugin (`pytest --nbval -p workbench.nbval_numeric ...`) each text output is split into its
words and its floats (numbers with a decimal point or an exponent): the words must match
exactly, as before (integers, shapes, verdicts, names); each float must agree with the blessed
one within one unit of its last printed digit plus the notebook regression tolerance of
`workbench.parity.tolerances.REGRESSION_PRINTED`. An exact zero stays exact: a parity number
printed as 0.000e+00 may not become 1.000e-07. When an output passes this way the blessed
text stands in for the fresh one, so nbval's own comparison (and its diff on failure) runs
unchanged.
"""

from __future__ import annotations

import re

from workbench.parity.tolerances import REGRESSION_PRINTED

#: A float as printed: a decimal point or an exponent, not part of a version, path or word.
FLOAT = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)(?![\w.])")
TEXT_KEYS = ("text/plain", "text/html", "text/markdown", "text/latex")


def last_digit_unit(text: str) -> float:
    """One unit in the last printed place of a float literal (`4.633e-01` -> 1e-4)."""
    mantissa, _, exponent = text.lower().lstrip("+-").partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def floats_agree(blessed: str, fresh: str) -> bool:
    a, b = float(blessed), float(fresh)
    if a == b:
        return True
    if a == 0.0 or b == 0.0:
        return False  # an exact zero (a bitwise parity number) stays exact
    bound = max(last_digit_unit(blessed), last_digit_unit(fresh))
    bound += REGRESSION_PRINTED.rtol * max(abs(a), abs(b)) + REGRESSION_PRINTED.atol
    return abs(a - b) <= bound


def texts_agree(blessed: str, fresh: str) -> bool:
    """Same words and same integers; every float within tolerance of its blessed value."""
    if FLOAT.sub("<float>", blessed) != FLOAT.sub("<float>", fresh):
        return False
    return all(floats_agree(a, b) for a, b in zip(FLOAT.findall(blessed), FLOAT.findall(fresh)))


def _reconcile(cell, fresh_outputs, blessed_outputs) -> None:
    """Where a fresh text output agrees with its blessed twin under `texts_agree`, copy the
    blessed text over it (both sanitized first, as nbval would)."""
    def key(output):
        return output.get("output_type"), output.get("name")

    blessed_by_key: dict = {}
    for output in blessed_outputs:
        blessed_by_key.setdefault(key(output), []).append(output)
    seen: dict = {}
    for output in fresh_outputs:
        k = key(output)
        index = seen[k] = seen.get(k, -1) + 1
        candidates = blessed_by_key.get(k, [])
        if index >= len(candidates):
            continue
        blessed = candidates[index]
        if output.get("output_type") == "stream":
            if isinstance(output.get("text"), str) and isinstance(blessed.get("text"), str) and \
                    texts_agree(cell.sanitize(blessed.text), cell.sanitize(output.text)):
                output["text"] = blessed.text
            continue
        for mime in TEXT_KEYS:
            a, b = blessed.get("data", {}).get(mime), output.get("data", {}).get(mime)
            if isinstance(a, str) and isinstance(b, str) and texts_agree(cell.sanitize(a), cell.sanitize(b)):
                output["data"][mime] = a


def pytest_configure(config):
    from nbval.plugin import IPyNbCell

    if getattr(IPyNbCell.compare_outputs, "_numeric", False):
        return
    original = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        _reconcile(self, test, ref)
        return original(self, test, ref, skip_compare)

    compare_outputs._numeric = True
    IPyNbCell.compare_outputs = compare_outputs
