"""The Open311 side of tests/e2e_public.rs: an independent client of a node's GeoReport v2 API.

Reads with the `georeport` package from PyPI (GeoReport), posts with plain `requests` (the
package has no POST). The CA of the test's PKI comes in REQUESTS_CA_BUNDLE. Each command
checks what it can on its own, prints one JSON value for the Rust test, and exits non-zero
(an AssertionError) on the first thing that is wrong.

    open311_client.py submit ROOT KEY AGENCY   -> the created request
    open311_client.py status ROOT ID           -> the request
    open311_client.py refused ROOT KEY         -> {} once a POST with KEY is refused (403)
    open311_client.py limited ROOT             -> {} once lookups get 429 with Retry-After
    open311_client.py captcha BASE             -> {} once the form showed a captcha and refused
                                                  a wrong answer (the node's pages, not Open311)
"""

import json
import sys

import requests
from georeport import GeoReport


def post(root, fields):
    return requests.post(f"{root}/requests.json", data=fields, timeout=30)


def submit(root, key, agency):
    client = GeoReport(root, api_key=key)
    services = client.get_service_list()
    codes = {s["service_code"]: s for s in services}
    assert len(services) == 12, services
    assert codes["labor"]["service_name"] == "劳动争议", codes["labor"]
    definition = client.get_service_definition("labor")
    assert definition["service_code"] == "labor", definition
    attributes = {a["code"] for a in definition["attributes"]}
    assert {"id_number", "respondent_name", "summary"} <= attributes, attributes

    fields = {
        "service_code": "labor",
        "last_name": "王",
        "first_name": "五",
        "phone": "13700001234",
        "description": "某工地拖欠工资两个月\n共计八千元",
        "address_string": "东街村三组",
        "attribute[id_number]": "610102199001011231",
        "attribute[respondent_name]": "某劳务公司",
        "attribute[amount]": "8000",
    }
    # Without a key, or with a wrong one: refused, in GeoReport's error format.
    for bad in ({}, {"api_key": "hotline." + "0" * 64}):
        r = post(root, {**fields, **bad})
        assert r.status_code == 403, (r.status_code, r.text)
        assert r.json()[0]["code"] == 403, r.text
    # A bad field: 400, nothing made.
    r = post(root, {**fields, "api_key": key, "attribute[id_number]": "610102199001011234"})
    assert r.status_code == 400, (r.status_code, r.text)
    r = post(root, {**fields, "api_key": key})
    assert r.status_code == 200, (r.status_code, r.text)
    created = r.json()[0]
    sid = created["service_request_id"]
    # The same request again names the same case.
    again = post(root, {**fields, "api_key": key}).json()[0]
    assert again["service_request_id"] == sid, (again, created)

    # georeport answers the first (only) element of the list the node sends.
    request = client.get_service_request(sid)
    assert request["service_request_id"] == sid, request
    assert request["status"] == "open", request
    assert request["agency_responsible"] == agency, request
    assert request["service_code"] == "labor", request
    assert "审核" in request["status_notes"], request
    assert "13700001234" not in json.dumps(request, ensure_ascii=False), request

    # The public list is empty; a list by ids finds only the real ones.
    assert client.get_service_requests() == [], "requests.json lists nothing without ids"
    bogus = sid.split(".")[0] + ".ABCDEFGHJKMN"
    listed = client.get_service_requests(service_request_id=f"{sid},{bogus}")
    assert [r["service_request_id"] for r in listed] == [sid], listed
    # A wrong code answers as an unknown id.
    for wrong in (bogus, "610116001001-20200101-000001.ABCDEFGHJKMN"):
        r = requests.get(f"{root}/requests/{wrong}.json", timeout=30)
        assert r.status_code == 404, (r.status_code, r.text)
        assert r.json() == [{"code": 404, "description": "no such service_request_id"}], r.text
    return created


def status(root, sid):
    return GeoReport(root).get_service_request(sid)


def refused(root, key):
    r = post(root, {"api_key": key, "service_code": "labor", "phone": "13700001234",
                    "description": "另一件事"})
    assert r.status_code == 403, (r.status_code, r.text)
    return {}


def limited(root):
    for _ in range(200):
        r = requests.get(f"{root}/requests/610116001001-20200101-000001.ABCDEFGHJKMN.json",
                         timeout=30)
        if r.status_code == 429:
            wait = int(r.headers["Retry-After"])
            assert wait >= 1, r.headers
            assert r.json()[0]["code"] == 429, r.text
            return {"retry_after": wait}
        assert r.status_code == 404, (r.status_code, r.text)
    raise AssertionError("200 lookups were never limited")


def hidden(page, name):
    marker = f'name="{name}" value="'
    assert marker in page, f"no {name} in the form"
    return page.split(marker, 1)[1].split('"', 1)[0]


def captcha(base):
    session = requests.Session()
    page = session.get(f"{base}/apply", timeout=30).text
    assert 'src="data:image/png;base64,iVBORw0KGgo' in page, "no captcha image"
    assert '<label for="captcha">' in page, "no captcha field"
    fields = {
        "csrf": hidden(page, "csrf"),
        "form_id": hidden(page, "form_id"),
        "captcha_id": hidden(page, "captcha_id"),
        "captcha": "wrong",
        "name": "赵六",
        "phone": "13700005678",
        "category": "1",
        "summary": "拖欠工资",
        "consent": "yes",
    }
    r = session.post(f"{base}/apply", data=fields, timeout=30)
    assert r.status_code == 422, (r.status_code, r.text)
    assert "验证码" in r.text and "赵六" in r.text, "refused, with what was typed kept"
    # The same captcha once more: used up by the wrong answer.
    r = session.post(f"{base}/apply", data=fields, timeout=30)
    assert r.status_code == 422, (r.status_code, r.text)
    return {}


def main(argv):
    command, args = argv[1], argv[2:]
    out = {"submit": submit, "status": status, "refused": refused, "limited": limited,
           "captcha": captcha}[command](*args)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv)
