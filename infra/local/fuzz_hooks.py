"""Schemathesis hooks for `make fuzz` (loaded through SCHEMATHESIS_HOOKS).

The positive-data check asks that every request the description allows is taken. A
SKU is any string of its shape to the description (an operator may describe a new
product under any), but an order can only name a product the catalog has, so for the
run an order line's `sku` lists the local catalog's SKUs (ORDERFLOW_FUZZ_CATALOG, the
file `orderflow-dev up` seeds from) as its only values: schema-valid orders name real
products, and the negative phases still send every other string.
"""

import json
import os
import uuid

import schemathesis


@schemathesis.hook
def before_load_schema(context, raw_schema):
    with open(os.environ["ORDERFLOW_FUZZ_CATALOG"], encoding="utf-8") as catalog:
        skus = sorted({product["sku"] for product in json.load(catalog)})
    line = raw_schema["components"]["schemas"]["OrderItem"]["properties"]
    line["sku"] = {"allOf": [line["sku"]], "enum": skus}


def _positive(case):
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.hook
def filter_case(context, case):
    if not _positive(case):
        return True
    # A cursor is the server's signed token: any string of its shape is schema-valid,
    # but only one a list returned is taken, and no generator can draw one. Made-up
    # cursors still go out as negative data; paging with real ones is tested in the
    # suites.
    if (case.query or {}).get("cursor") is not None:
        return False
    # Each SKU on one line at most: JSON Schema cannot say so of an array of objects
    # (uniqueItems compares whole lines), so the description says it in words.
    items = case.body.get("items") if isinstance(case.body, dict) else None
    if isinstance(items, list):
        skus = [item.get("sku") for item in items if isinstance(item, dict)]
        return len(skus) == len(set(skus))
    return True


@schemathesis.hook
def before_call(context, case, kwargs):
    # An Idempotency-Key names one request: the same key with another body is refused
    # (422, as the Idempotency-Key draft has it). A positive case is a new request, so
    # it goes out under a key of its own; replays of one request are tested in the
    # suites.
    if _positive(case) and "Idempotency-Key" in (case.headers or {}):
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
        # An operator places an order for a customer it names; a customer's own is
        # theirs. Who calls decides whether `customerId` is needed, which no schema
        # can state, so an operator's order names the fuzzing customer.
        if os.environ.get("ORDERFLOW_FUZZ_PRINCIPAL") == "operator" and isinstance(case.body, dict):
            if case.body.get("customerId") is None:
                case.body["customerId"] = "c-fuzz"
