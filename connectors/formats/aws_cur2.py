"""AWS CUR 2.0 (Data Exports table ``COST_AND_USAGE_REPORT``).

The columns are the Athena snake_case names of CUR 1 (so the CUR 1 mapping applies unchanged),
except that the dynamic parts are map columns: ``product`` (attributes such as ``product_name``,
``region``, ``transfer_type``), ``resource_tags`` (keys ``user_team``, ``aws_created_by``),
``cost_category`` and ``discount``. Parquet exports type them MAP(VARCHAR, VARCHAR); CSV exports
write them as JSON text. CUR 2.0 also names the accounts (``bill_payer_account_name``,
``line_item_usage_account_name``), which CUR 1 never does.
"""

from __future__ import annotations

from ..base import Cols
from ..sql import quote_ident, quote_literal
from .aws_cur import CurColumns, CurFormatBase, athena_name, is_cur2, json_object_sql, tag_key_sql

MAP_COLUMNS = ("product", "resource_tags", "cost_category", "discount")


class Cur2Columns(CurColumns):
    """CUR columns in CUR 2.0: flat snake_case columns first, then the ``product`` map."""

    def __init__(self, cols: Cols):
        super().__init__(cols, "athena")

    def _as_map(self, name: str, ident: str | None = None) -> str | None:
        """A MAP(VARCHAR, VARCHAR) expression for a map column, whatever its stored type.

        ``ident`` reads the column's value from elsewhere (a memo table's key) instead."""
        actual = self.cols.name(name)
        if actual is None:
            return None
        ident = ident or quote_ident(actual)
        kind = self.cols.type_of(actual)
        if kind.startswith("MAP("):
            return ident
        if kind == "VARCHAR":
            return f"CAST(json(ca_braced_json({ident})) AS MAP(VARCHAR, VARCHAR))"
        return f"CAST(to_json({ident}) AS MAP(VARCHAR, VARCHAR))"

    def str(self, *slash_names: str) -> str:
        if super().has(*slash_names):
            return super().str(*slash_names)
        product = self._as_map("product")
        keys = [athena_name(n)[len("product_"):] for n in slash_names if n.startswith("product/")]
        if product is None or not keys:
            return "NULL::VARCHAR"
        values = ", ".join(f"NULLIF(trim(CAST(({product})[{quote_literal(k)}] AS VARCHAR)), '')" for k in keys)
        return f"coalesce({values}, NULL::VARCHAR)"

    # Tags and cost categories become JSON through list lambdas that cost several microseconds a
    # row, yet a month holds few distinct tag maps (one per resource at most). So each distinct
    # map is converted once (`memos`) and the rows read the result by a join on the map.
    _MEMOS = (("ca__tags_json", "resource_tags", True), ("ca__cost_categories_json", "cost_category", False))

    def memos(self) -> list[tuple[str, str, str]]:
        out = []
        for alias, name, rename_keys in self._MEMOS:
            actual = self.cols.name(name)
            if actual is not None:
                out.append((alias, quote_ident(actual), self._map_json(name, rename_keys, ident="k")))
        return out

    def _map_json(self, name: str, rename_keys: bool, ident: str | None = None) -> str:
        mapped = self._as_map(name, ident)
        if mapped is None:
            return "NULL::JSON"
        key = tag_key_sql("e.key") if rename_keys else "e.key"
        entries = f"list_transform(map_entries({mapped}), lambda e: struct_pack(k := {key}, v := CAST(e.value AS VARCHAR)))"
        return json_object_sql(entries, unique_keys=False)

    def _memo(self, name: str) -> str:
        alias = next(a for a, n, _ in self._MEMOS if n == name)
        return quote_ident(alias) if self.cols.name(name) is not None else "NULL::JSON"

    def tags(self) -> str:
        return self._memo("resource_tags")

    def cost_categories(self) -> str:
        return self._memo("cost_category")

    def account_names(self) -> tuple[str, str]:
        return self.cols.str("bill_payer_account_name"), self.cols.str("line_item_usage_account_name")

    def parsed(self) -> list[tuple[str, str]]:
        checks = super().parsed()
        for name in MAP_COLUMNS:
            check = self.cols.parsed("json", name)
            if check is not None:
                checks.append(check)
        return checks


class Cur2Format(CurFormatBase):
    id = "aws-cur2"
    title = "AWS CUR 2.0 (Data Exports)"
    export_family = "aws-cur2"

    def columns(self, cols: Cols) -> CurColumns:
        return Cur2Columns(cols)

    def score(self, cols: Cols) -> int:
        if cols.has("line_item_unblended_cost") and is_cur2(cols):
            return 60
        return 0

    def version(self, cols: Cols) -> str:
        return "2.0"


FORMATS = [Cur2Format()]
