"""Writes a legacy 台账 as an office keeps it, with openpyxl (an independent writer), for the
import tests; or prints the header row of a workbook as JSON.

    legacy_sheet.py write FILE   good rows, a row whose ID number is a number cell, a row with
                                 an unknown category, a blank row, a real date cell
    legacy_sheet.py header FILE  the first row of the first sheet, as a JSON list
"""

import datetime
import json
import sys

from openpyxl import Workbook, load_workbook

HEADER = ["登记日期", "类别", "受理渠道", "摘要", "申请人", "电话", "身份证号", "标的额(元)", "状态"]


def write(path):
    book = Workbook()
    sheet = book.active
    sheet.title = "2024年台账"
    sheet.append(HEADER)
    # Row 2: a real date cell, text ID, a number amount.
    sheet.append([datetime.date(2024, 3, 5), "劳动争议", "窗口来访", "讨薪：拖欠工资三个月",
                  "张三", "13812345678", "11010519491231002X", 4400, "已办结"])
    # Row 3: a date typed as text, still in mediation.
    sheet.append(["2024/11/20", "邻里纠纷", "网格上报", "宅基地边界争执",
                  "李四", "13912345678", "", "", "调解中"])
    # Row 4: the ID number typed as a number (Excel keeps 15 digits): refused.
    sheet.append(["2024-05-01", "租赁纠纷", "窗口来访", "押金不退",
                  "王五", "13712345678", 110105194912310020, 1200.5, "已化解"])
    # Row 5: a category not in the template: refused.
    sheet.append(["2024-06-01", "吵架", "窗口来访", "口角", "赵六", "", "", "", "已办结"])
    # Row 6 blank; row 7: unreviewed.
    sheet.append([])
    sheet.append(["2024-12-01", "物业纠纷", "12348热线", "物业费争议", "孙七", "", "", "980",
                  "未审核"])
    book.save(path)


def header(path):
    sheet = load_workbook(path).active
    row = next(sheet.iter_rows(max_row=1, values_only=True))
    print(json.dumps(["" if v is None else str(v) for v in row], ensure_ascii=False))


if __name__ == "__main__":
    {"write": write, "header": header}[sys.argv[1]](sys.argv[2])
