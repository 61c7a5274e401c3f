"""Documented REST answers of the Google APIs that have no emulator, for `ApiServer`.

- OAuth 2.0 token endpoint (``token_uri`` of an authorized-user ADC file);
- Cloud Billing v1: ``billingAccounts.get``, ``billingAccounts.projects.list``;
- Cloud Billing Catalog v1: ``services.skus.list``;
- BigQuery v2: ``jobs.insert``, ``jobs.get``, ``jobs.getQueryResults``, ``tabledata.list``, with
  rows in the REST ``{"f": [{"v": ...}]}`` encoding of a table's schema (RECORD, REPEATED).

The BigQuery "table" is a Parquet file (the project's detailed-export fixture); the two query
shapes the connector sends (the per-month summary and one month's rows) are answered from it.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .cloud_servers import ApiServer, Request

ACCESS_TOKEN = "pull-test-gcp-access-token"
BILLING_ACCOUNT = "01A2B3-C4D5E6-F7A8B9"


def bq_field(name: str, arrow_type: pa.DataType) -> dict:
    if pa.types.is_list(arrow_type):
        inner = bq_field(name, arrow_type.value_type)
        return {**inner, "mode": "REPEATED"}
    if pa.types.is_struct(arrow_type):
        return {"name": name, "type": "RECORD", "mode": "NULLABLE",
                "fields": [bq_field(f.name, f.type) for f in arrow_type]}
    kind = ("TIMESTAMP" if pa.types.is_timestamp(arrow_type) else "FLOAT" if pa.types.is_floating(arrow_type)
            else "BOOLEAN" if pa.types.is_boolean(arrow_type) else "NUMERIC" if pa.types.is_decimal(arrow_type)
            else "INTEGER" if pa.types.is_integer(arrow_type) else "STRING")
    return {"name": name, "type": kind, "mode": "NULLABLE"}


def bq_value(value, field: dict, int64_timestamps: bool, repeated: bool | None = None):
    if value is None:
        return None
    if repeated is None:
        repeated = field.get("mode") == "REPEATED"
    if repeated:
        return [{"v": bq_value(item, field, int64_timestamps, False)} for item in value]
    kind = field["type"]
    if kind == "RECORD":
        return {"f": [{"v": bq_value(value.get(sub["name"]), sub, int64_timestamps)} for sub in field["fields"]]}
    if kind == "TIMESTAMP":
        micros = int(value.timestamp()) * 1_000_000 + value.microsecond
        return str(micros) if int64_timestamps else repr(micros / 1_000_000)
    if kind == "FLOAT":
        return repr(float(value))
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "NUMERIC":
        return str(Decimal(value))
    return str(value)


class FakeGoogle:
    """Answers for one test module; `fail_first` and `refuse` inject throttling and denials."""

    def __init__(self, api: ApiServer, table_file: Path, project: str = "finops-jobs"):
        self.api = api
        self.project = project
        table = pq.read_table(table_file)
        self.fields = [bq_field(f.name, f.type) for f in table.schema]
        self.rows = table.to_pylist()
        self.jobs: dict[str, tuple[list[dict], list[list]]] = {}
        self.skus: list[dict] = []
        self.refuse: dict[str, str] = {}  # path fragment -> permission named in the 403
        self.fail_first: set[str] = set()  # path fragments answered 503 once
        self.tokens_issued = 0
        api.route(self.answer)

    # -- routing --------------------------------------------------------------------------------
    def answer(self, request: Request):
        if request.path == "/token":
            self.tokens_issued += 1
            return 200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}, {}
        token = str(request.headers.get("Authorization") or "").removeprefix("Bearer ")
        # The token issued above, or a self-signed JWT (service-account credentials may skip the exchange).
        if token != ACCESS_TOKEN and token.count(".") != 2:
            return 401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                   "status": "UNAUTHENTICATED"}}, {}
        for fragment in list(self.fail_first):
            if fragment in request.path:
                self.fail_first.discard(fragment)
                return 503, {"error": {"code": 503, "message": "The service is currently unavailable.",
                                       "status": "UNAVAILABLE", "errors": [{"reason": "backendError"}]}}, {}
        for fragment, permission in self.refuse.items():
            if fragment in request.path:
                return 403, {"error": {"code": 403, "status": "PERMISSION_DENIED",
                                       "message": f"Access Denied: User does not have {permission} permission.",
                                       "errors": [{"reason": "accessDenied", "message": f"no {permission}"}]}}, {}
        if request.path.startswith("/v1/billingAccounts/"):
            return self.billing(request)
        if request.path.startswith("/v1/services/"):
            return 200, {"skus": self.skus, "nextPageToken": ""}, {}
        if request.path.startswith("/bigquery/v2/"):
            return self.bigquery(request)
        return None

    def billing(self, request: Request):
        name = request.path.removeprefix("/v1/")
        if name == f"billingAccounts/{BILLING_ACCOUNT}":
            return 200, {"name": name, "open": True, "displayName": "Acme ML", "masterBillingAccount": ""}, {}
        if name == f"billingAccounts/{BILLING_ACCOUNT}/projects":
            infos = [{"name": f"projects/{p}/billingInfo", "projectId": p, "billingAccountName": f"billingAccounts/{BILLING_ACCOUNT}",
                      "billingEnabled": True} for p in sorted({r["project"]["id"] for r in self.rows if r["project"]})]
            return 200, {"projectBillingInfo": infos, "nextPageToken": ""}, {}
        return 404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}, {}

    # -- BigQuery -------------------------------------------------------------------------------
    def bigquery(self, request: Request):
        parts = request.path.removeprefix("/bigquery/v2/").split("/")
        if request.method == "POST" and parts[2:] == ["jobs"]:
            return 200, self.insert(request.json()), {}
        if request.method == "GET" and len(parts) == 4 and parts[2] == "jobs":
            return 200, self.job_resource(parts[3], {}), {}
        if request.method == "GET" and len(parts) == 4 and parts[2] == "queries":
            return 200, self.page(parts[3], request, "bigquery#getQueryResultsResponse"), {}
        if request.method == "GET" and len(parts) == 7 and parts[6] == "data":
            return 200, self.page(parts[5].removeprefix("anon_"), request, "bigquery#tableDataList"), {}
        return 400, {"error": {"code": 400, "message": f"unexpected BigQuery call {request.method} {request.path}"}}, {}

    def insert(self, body: dict) -> dict:
        query = body["configuration"]["query"]
        params = {p["name"]: (p.get("parameterValue") or {}).get("value") for p in query.get("queryParameters", [])}
        sql = query["query"]
        if "COUNT(*)" in sql:
            months: dict[str, list] = {}
            for row in self.rows:
                month = row["invoice"]["month"]
                if (params.get("since") and month < params["since"]) or (params.get("until") and month >= params["until"]):
                    continue
                months.setdefault(month, []).append(row["export_time"])
            fields = [{"name": "invoice_month", "type": "STRING", "mode": "NULLABLE"},
                      {"name": "row_count", "type": "INTEGER", "mode": "NULLABLE"},
                      {"name": "last_export_time", "type": "STRING", "mode": "NULLABLE"}]
            rows = [[m, str(len(t)), max(t).strftime("%Y-%m-%d %H:%M:%S+00")] for m, t in sorted(months.items())]
            encoded = [{"f": [{"v": v} for v in row]} for row in rows]
        elif "@invoice_month" in sql:
            fields = self.fields
            selected = [r for r in self.rows if r["invoice"]["month"] == params["invoice_month"]]
            encoded = selected  # encoded per page (timestamp format depends on the request)
        else:
            raise AssertionError(f"unexpected query {sql}")
        job_id = (body.get("jobReference") or {}).get("jobId") or uuid.uuid4().hex
        self.jobs[job_id] = (fields, encoded)
        return self.job_resource(job_id, body["configuration"])

    def job_resource(self, job_id: str, configuration: dict) -> dict:
        fields, rows = self.jobs[job_id]
        configuration = {**configuration, "jobType": "QUERY"}
        configuration.setdefault("query", {})["destinationTable"] = {
            "projectId": self.project, "datasetId": "_anon", "tableId": f"anon_{job_id}"}
        now = str(int(time.time() * 1000))
        return {
            "kind": "bigquery#job", "id": f"{self.project}:US.{job_id}",
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": "US"},
            "configuration": configuration, "status": {"state": "DONE"},
            "statistics": {"creationTime": now, "startTime": now, "endTime": now,
                           "query": {"totalBytesProcessed": "0", "statementType": "SELECT"}},
        }

    def page(self, job_id: str, request: Request, kind: str) -> dict:
        fields, rows = self.jobs[job_id]
        start = int(request.query.get("pageToken") or request.query.get("startIndex") or 0)
        size = int(request.query.get("maxResults") or 25)
        chunk = rows[start:start + size]
        # The client asks for int64 microsecond timestamps (formatOptions.useInt64Timestamp) and parses them so.
        int64 = request.query.get("formatOptions.useInt64Timestamp", "true").lower() == "true"
        if chunk and not (isinstance(chunk[0], dict) and "f" in chunk[0]):
            chunk = [{"f": [{"v": bq_value(row.get(f["name"]), f, int64)} for f in fields]} for row in chunk]
        page = {"kind": kind, "totalRows": str(len(rows)), "rows": chunk}
        if start + size < len(rows):
            page["pageToken"] = str(start + size)
        if kind == "bigquery#getQueryResultsResponse":
            page.update(jobComplete=True, schema={"fields": fields},
                        jobReference={"projectId": self.project, "jobId": job_id, "location": "US"})
        return page


_KEY: list[str] = []


def service_account_key(api_url: str) -> dict:
    """A service-account key file whose token_uri is the local server (a fresh RSA key)."""
    if not _KEY:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _KEY.append(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode())
    return {
        "type": "service_account", "project_id": "finops-jobs", "private_key_id": "pulltestkeyid0000000000000000000000000001",
        "private_key": _KEY[0], "client_email": "costaudit@finops-jobs.iam.gserviceaccount.com",
        "client_id": "100000000000000000001", "token_uri": f"{api_url}/token",
    }


def sku(description: str, group: str, unit: str, price: str, regions: list[str], usage: str = "OnDemand") -> dict:
    """A Catalog SKU as services.skus.list returns it."""
    amount = Decimal(price)
    units = int(amount)
    nanos = int((amount - units) * 1_000_000_000)
    return {
        "name": f"services/6F81-5844-456A/skus/{uuid.uuid5(uuid.NAMESPACE_URL, description + usage).hex[:12].upper()}",
        "skuId": uuid.uuid5(uuid.NAMESPACE_URL, description + usage).hex[:12].upper(),
        "description": description,
        "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": "Compute", "resourceGroup": group,
                     "usageType": usage},
        "serviceRegions": regions,
        "pricingInfo": [{
            "summary": "", "currencyConversionRate": 1, "effectiveTime": datetime(2024, 6, 1).isoformat() + "Z",
            "pricingExpression": {"usageUnit": unit, "usageUnitDescription": unit, "baseUnit": "s",
                                  "baseUnitDescription": "second", "baseUnitConversionFactor": 3600, "displayQuantity": 1,
                                  "tieredRates": [{"startUsageAmount": 0, "unitPrice": {
                                      "currencyCode": "USD", "units": str(units), "nanos": nanos}}]},
        }],
        "serviceProviderName": "Google",
    }
