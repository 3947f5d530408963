"""Reads a 台账 exported by `fqctl case export` with independent readers (openpyxl for .xlsx,
the csv module for .csv) and prints it as JSON: {"rows": [[cell, ...], ...], "types": [...]},
the types being those of the ID-number column's cells (to show they are text)."""

import csv
import json
import sys


def main(path):
    if path.endswith(".xlsx"):
        from openpyxl import load_workbook

        sheet = load_workbook(path).active
        rows = [[c.value for c in row] for row in sheet.iter_rows()]
        header = next(i for i, r in enumerate(rows) if r and r[0] == "序号")
        col = rows[header].index("身份证号")
        types = [type(r[col]).__name__ for r in rows[header + 1:]]
    else:
        with open(path, encoding="utf-8") as f:
            raw = f.read()
        assert raw.startswith("\ufeff"), "a BOM for Excel and WPS"
        rows = list(csv.reader(raw[1:].splitlines()))
        types = []
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    print(json.dumps({"rows": rows, "types": types}, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
