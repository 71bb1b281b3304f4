"""Fixtures that run pyairtable's own integration suite against the sandbox over HTTP.

pyairtable's ``tests/integration/`` (MIT, gtalarico/pyairtable) expects a real Airtable base named
"Test Wrapper" with hand-made tables and an ``AIRTABLE_API_KEY``. These fixtures replace its
``conftest.py`` (and only that): the same fixture names, pointed at a loopback server running the
sandbox's WSGI app (the code behind ``sandbox serve``), on a base that pyairtable itself creates there
with ``Api.create_base`` + ``Table.create_field``. Field ids are looked up by name, never hard-coded.

The test modules themselves go, unchanged, into ``vendor/`` next to this file (README.md here says how);
they are not committed (see docs/sandbox.md), so without them the run is skipped with that reason.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from pyairtable import Api, Base, Table
from requests.adapters import HTTPAdapter

VENDOR = Path(__file__).parent / "vendor"
TOKEN = "pyairtable-suite"
# Airtable has no API to list workspaces outside Enterprise; the sandbox's workspace id comes from the
# environment when the metadata helper gives it one, else this id (it must start with "wsp").
WORKSPACE_ID = os.environ.get("BESTSTAG_SANDBOX_WORKSPACE_ID", "wspBestStagSandbx")
BASE_NAME = "Test Wrapper"  # pyairtable's base_name fixture
# pyairtable's upload test asserts attachment size 7297, the size of its docs logo: our own PNG is
# padded to exactly that many bytes (no copy of their image).
IMAGE_SIZE = 7297


def vendored_tests() -> list[Path]:
    return sorted(VENDOR.glob("test_*.py")) if VENDOR.is_dir() else []


def pytest_configure(config: pytest.Config) -> None:
    # pyairtable's tox.ini declares this marker; the project runs with --strict-markers
    config.addinivalue_line("markers", "integration: pyairtable's integration tests (here: against the sandbox)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if VENDOR not in path.parents:
            continue
        if path.name == "test_integration_enterprise.py":
            item.add_marker(pytest.mark.skip(reason="Enterprise API: the sandbox emulates no Enterprise account"))


# ---------------------------------------------------------------- the image the suite attaches


def png_of_size(size: int, width: int = 64, height: int = 32) -> bytes:
    """A valid RGB PNG of exactly ``size`` bytes (a tEXt chunk pads it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(
        b"\x00" + b"".join(bytes([x * 4 % 256, y * 8 % 256, 128]) for x in range(width)) for y in range(height)
    )
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    body = chunk(b"IDAT", zlib.compress(raw, 9))
    end = chunk(b"IEND", b"")
    pad = size - len(head) - len(body) - len(end) - 12 - len(b"Comment\x00")
    if pad < 0:
        raise ValueError(f"a {width}x{height} PNG needs more than {size} bytes")
    return head + chunk(b"tEXt", b"Comment\x00" + b"x" * pad) + body + end


class _ImageHandler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def valid_img_url() -> Iterator[str]:
    """pyairtable's fixture is a GitHub URL; here a loopback server serves our own PNG (no internet)."""
    handler = type("H", (_ImageHandler,), {"body": png_of_size(IMAGE_SIZE)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/docs/source/_static/logo.png"
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- the server and the base


class _UploadHostAdapter(HTTPAdapter):
    """Sends what pyairtable addresses to content.airtable.com (uploads) to the sandbox server, which
    serves ``uploadAttachment`` on its own host."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self._target = urlsplit(endpoint)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        request.url = urlunsplit((self._target.scheme, self._target.netloc, parts.path, parts.query, ""))
        # the session chose proxies for content.airtable.com (the wire trap's); the target is loopback
        kwargs["proxies"] = {}
        return super().send(request, **kwargs)


def _mount_upload_host(api: Api, endpoint: str) -> None:
    # pyairtable keeps the endpoint's scheme and swaps the host: http://content.airtable.com here
    for scheme in ("http", "https"):
        api.session.mount(f"{scheme}://content.airtable.com/", _UploadHostAdapter(endpoint))


_SANDBOXES: dict[str, Any] = {}


def _hold_what_the_api_cannot_create(server: str, base_id: str) -> None:
    from beststag_cli.sandbox.load import load_schema
    from beststag_cli.sandbox.schema import new_id

    store = _SANDBOXES[server].store
    doc = store.base_schema(base_id)
    name = next(b["name"] for b in store.list_bases() if b["id"] == base_id)
    tables = {t["name"]: t for t in doc["tables"]}
    everything = tables["Everything"]
    ids = {f["name"]: f["id"] for f in everything["fields"]}
    ids.update({"Formula Int": new_id("fld"), "Formula Error": new_id("fld")})
    everything["fields"].extend(_computed(ids))
    tables["TEST_TABLE"]["views"].append({"id": new_id("viw"), "name": "view", "type": "grid"})
    load_schema(store, doc, base_id, name, replace=True)


@pytest.fixture(scope="session")
def _sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty sandbox (no sample base) on a loopback socket; yields its endpoint URL."""
    from beststag_cli.sandbox import Sandbox
    from beststag_cli.sandbox.server import serve_in_thread

    sb = Sandbox(tmp_path_factory.mktemp("pyairtable-suite") / "base.sqlite", tokens=[TOKEN])
    server, thread = serve_in_thread(sb.app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    _SANDBOXES[url] = sb
    yield url
    _SANDBOXES.pop(url, None)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    sb.close()


@pytest.fixture(autouse=True)
def _pyairtable_to_sandbox(_sandbox_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``Api`` the suite builds, its ORM models' included (``Model.meta.api`` takes no endpoint),
    talks to the sandbox: the endpoint defaults to the server and uploads go there too."""
    original = Api.__init__

    def init(self: Api, api_key: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("endpoint_url", _sandbox_server)
        original(self, api_key, *args, **kwargs)
        _mount_upload_host(self, _sandbox_server)

    monkeypatch.setattr(Api, "__init__", init)


def _field(name: str, type_: str, **options: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "type": type_}
    if options:
        spec["options"] = options
    return spec


_DATE = {"dateFormat": {"name": "iso"}}
_DATETIME = {**_DATE, "timeFormat": {"name": "24hour"}, "timeZone": "utc"}
_SELECT = {"choices": [{"name": "Todo"}, {"name": "Done"}]}
_NUMBER0 = {"precision": 0}

# Tables and fields the suite uses (pyairtable's conftest Columns and its ORM models). The first field of
# each table is its primary field, given to create_base; the rest are added with Table.create_field.
SCHEMA: dict[str, list[dict[str, Any]]] = {
    "TEST_TABLE": [
        _field("text", "singleLineText"),
        _field("number", "number", precision=1),
        _field("boolean", "checkbox", icon="check", color="greenBright"),
        _field("datetime", "dateTime", **_DATETIME),
        _field("attachment", "multipleAttachments"),
    ],
    "Address": [
        _field("Street", "singleLineText"),
        _field("Number", "number", **_NUMBER0),
    ],
    "Contact": [
        _field("First Name", "singleLineText"),
        _field("Last Name", "singleLineText"),
        _field("Email", "email"),
        _field("Registered", "checkbox", icon="check", color="greenBright"),
        _field("Birthday", "date", **_DATE),
        _field("Last Access", "dateTime", **_DATETIME),
    ],
    "Everything": [
        _field("Name", "singleLineText"),
        _field("Notes", "richText"),
        _field("Assignee", "singleCollaborator"),
        _field("Watchers", "multipleCollaborators"),
        _field("Status", "singleSelect", **_SELECT),
        _field("Attachments", "multipleAttachments"),
        _field("Done", "checkbox", icon="check", color="greenBright"),
        _field("Tags", "multipleSelects", **_SELECT),
        _field("Date", "date", **_DATE),
        _field("DateTime", "dateTime", **_DATETIME),
        _field("Duration (h:mm)", "duration", durationFormat="h:mm"),
        _field("Duration (h:mm:ss.s)", "duration", durationFormat="h:mm:ss.S"),
        _field("Phone", "phoneNumber"),
        _field("Email", "email"),
        _field("URL", "url"),
        _field("Integer", "number", **_NUMBER0),
        _field("Decimal 1", "number", precision=1),
        _field("Decimal 2", "number", precision=2),
        _field("Number", "number", precision=2),
        _field("Dollars", "currency", precision=2, symbol="$"),
        _field("Percent", "percent", precision=0),
        _field("Stars", "rating", icon="star", max=5, color="yellowBright"),
        _field("Barcode", "barcode"),
    ],
}
# Links need the other table's id, known only once it exists.
LINKS: list[tuple[str, str, str]] = [
    # (table, field name, linked table); a link's inverse field is named after its table, as in Airtable:
    # Address.Contact creates Contact.Address, Everything.Address creates Address.Everything
    ("Address", "Contact", "Contact"),
    ("Everything", "Address", "Address"),
    ("Everything", "Link to Self", "Everything"),
]


# What Airtable's API cannot create — computed fields (it refuses their types) and views — existed in
# pyairtable's real test base because a person made them in Airtable's UI. The sandbox holds them the
# way `beststag sandbox load --schema` does: the base pyairtable created is read back with `GET …/tables`,
# these are added to that document (ids of everything pyairtable made kept) and the document is loaded
# over the base. The API's refusal of each type is checked first (see `_suite_base`).
def _computed(ids: dict[str, str]) -> list[dict[str, Any]]:
    """Everything's computed fields, in Airtable's schema-document form; `ids` maps field names to ids."""
    num0 = {"type": "number", "options": {"precision": 0}}
    return [
        {
            "id": ids["Formula Int"],
            "name": "Formula Int",
            "type": "formula",
            "options": {"formula": "1", "result": num0},
        },
        {
            "name": "Formula Float",
            "type": "formula",
            "options": {"formula": "1.5", "result": {"type": "number", "options": {"precision": 1}}},
        },
        {
            "name": "Formula Text",
            "type": "formula",
            "options": {"formula": "'text'", "result": {"type": "singleLineText"}},
        },
        {"id": ids["Formula Error"], "name": "Formula Error", "type": "formula", "options": {"formula": "ERROR()"}},
        # the formula of pyairtable's recorded schema (tests/sample_data/field_schema/FormulaFieldSchema.json)
        {
            "name": "Formula NaN",
            "type": "formula",
            "options": {"formula": f'{{{ids["Name"]}}} + "FOO"', "result": num0},
        },
        {"name": "Autonumber", "type": "autoNumber"},
        {"name": "Open URL", "type": "button", "options": {"label": "Open", "url": "'https://example.com/'"}},
        {"name": "Link to Self (Count)", "type": "count", "options": {"recordLinkFieldId": ids["Link to Self"]}},
        {"name": "Count", "type": "count", "options": {"recordLinkFieldId": ids["Address"]}},
        {
            "name": "Rollup Int",
            "type": "rollup",
            "options": {
                "recordLinkFieldId": ids["Link to Self"],
                "fieldIdInLinkedTable": ids["Formula Int"],
                "formula": "SUM(values)",
                "result": num0,
            },
        },
        {
            "name": "Rollup Error",
            "type": "rollup",
            "options": {
                "recordLinkFieldId": ids["Link to Self"],
                "fieldIdInLinkedTable": ids["Formula Error"],
                "formula": "ARRAYJOIN(values)",
            },
        },
        {
            "name": "Lookup Int",
            "type": "multipleLookupValues",
            "options": {"recordLinkFieldId": ids["Link to Self"], "fieldIdInLinkedTable": ids["Formula Int"]},
        },
        {
            "name": "Lookup Error",
            "type": "multipleLookupValues",
            "options": {"recordLinkFieldId": ids["Link to Self"], "fieldIdInLinkedTable": ids["Formula Error"]},
        },
        {"name": "Created", "type": "createdTime"},
        {"name": "Created By", "type": "createdBy"},
        {"name": "Last Modified", "type": "lastModifiedTime"},
        {"name": "Last Modified By", "type": "lastModifiedBy"},
    ]


#: the types pyairtable's suite needs that Airtable's API refuses to create (each refusal is checked)
REFUSED_TYPES = ("formula", "autoNumber", "button", "count", "rollup", "multipleLookupValues", "createdTime")


@pytest.fixture(scope="session")
def _suite_base(_sandbox_server: str) -> str:
    """Creates the "Test Wrapper" base through pyairtable; returns its id."""
    api = Api(TOKEN, endpoint_url=_sandbox_server)
    base = api.create_base(
        WORKSPACE_ID, BASE_NAME, [{"name": name, "fields": fields[:1]} for name, fields in SCHEMA.items()]
    )
    tables = {t.name: t for t in base.tables()}
    for name, fields in SCHEMA.items():
        for spec in fields[1:]:
            tables[name].create_field(spec["name"], spec["type"], options=spec.get("options"))
    for name, field, other in LINKS:
        tables[name].create_field(field, "multipleRecordLinks", options={"linkedTableId": tables[other].id})
    for ftype in REFUSED_TYPES:  # as Airtable does: the API creates none of these
        with pytest.raises(requests.HTTPError) as refused:
            tables["Everything"].create_field(f"refused {ftype}", ftype)
        assert refused.value.response.status_code == 422, refused.value.response.text
    _hold_what_the_api_cannot_create(_sandbox_server, base.id)
    return base.id


# ---------------------------------------------------------------- pyairtable's fixture names


class Columns:
    """pyairtable's ``Columns``, with the ids read from the base's schema instead of hard-coded."""

    TEXT = "text"
    NUM = "number"
    BOOL = "boolean"
    DATETIME = "datetime"
    ATTACHMENT = "attachment"

    def __init__(self, ids: dict[str, str]) -> None:
        self.TEXT_ID = ids[self.TEXT]
        self.NUM_ID = ids[self.NUM]
        self.ATTACHMENT_ID = ids[self.ATTACHMENT]


@pytest.fixture
def api_key(_suite_base: str) -> str:
    return TOKEN


@pytest.fixture
def api(api_key: str) -> Api:
    return Api(api_key)  # the endpoint comes from _pyairtable_to_sandbox


@pytest.fixture
def base_id(_suite_base: str) -> str:
    return _suite_base


@pytest.fixture
def base(api: Api, base_id: str) -> Base:
    return api.base(base_id)


@pytest.fixture
def base_name() -> str:
    return BASE_NAME


@pytest.fixture
def table_name() -> str:
    return "TEST_TABLE"


@pytest.fixture
def table_id(base: Base, table_name: str) -> str:
    return base.table(table_name).schema().id


@pytest.fixture
def cols(base: Base) -> Columns:
    schema = base.table("TEST_TABLE").schema()
    return Columns({f.name: f.id for f in schema.fields})


@pytest.fixture
def table(base: Base, table_name: str) -> Iterator[Table]:
    table = base.table(table_name)
    yield table
    records = table.all()
    table.batch_delete([r["id"] for r in records])


@pytest.fixture
def make_meta(api_key: str, base_id: str) -> Any:
    def _make_meta(table_name: str) -> type:
        return type("Meta", (), {"api_key": api_key, "base_id": base_id, "table_name": table_name})

    return _make_meta
