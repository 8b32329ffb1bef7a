#!/usr/bin/env python3
"""Times `TransactWriteItems` in moto as a table grows: moto's own
implementation, then the fidelity layer's (`server.py`,
`transactions_without_table_copies`). In process (moto's `mock_aws`), so it
measures the emulator alone, without HTTP.

    .venv/bin/python scripts/moto/txbench.py

Each transaction puts three items (~0.8 KB each) into a table with a
stream; every second one is cancelled by a failed condition. Between
rounds the table grows by plain `PutItem`s (each also a stream record).
"""
import importlib.util
import os
import time

import boto3
from moto import mock_aws

BLOB = "x" * 800
SIZES = [0, 500, 1000, 2000]
ROUNDS = 20


def run(label):
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName="t",
        KeySchema=[
            {"AttributeName": "p", "KeyType": "HASH"},
            {"AttributeName": "s", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "p", "AttributeType": "S"},
            {"AttributeName": "s", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )

    def transaction(i, fail):
        cond = {"ConditionExpression": "attribute_exists(p)"} if fail else {}
        items = [
            {"Put": {"TableName": "t", "Item": {"p": {"S": "S#a"}, "s": {"S": f"{i:020}"},
                                                  "e": {"S": BLOB}}, **cond}},
            {"Put": {"TableName": "t", "Item": {"p": {"S": "S#a"}, "s": {"S": "tip"},
                                                  "r": {"N": str(i)}, "e": {"S": BLOB}}}},
            {"Put": {"TableName": "t", "Item": {"p": {"S": "S#a"}, "s": {"S": f"i#{i}"},
                                                  "f": {"N": str(i)}}}},
        ]
        try:
            ddb.transact_write_items(TransactItems=items)
        except ddb.exceptions.TransactionCanceledException:
            pass

    n = 0
    for size in SIZES:
        while n < size:
            ddb.put_item(TableName="t", Item={"p": {"S": "S#b"}, "s": {"S": f"{n:020}"},
                                             "e": {"S": BLOB}})
            n += 1
        start = time.perf_counter()
        for j in range(ROUNDS):
            transaction(1_000_000 + size * 100 + j, fail=j % 2 == 1)
        ms = (time.perf_counter() - start) / ROUNDS * 1000
        print(f"{label}: {size:5} items put before: {ms:8.1f} ms per TransactWriteItems",
              flush=True)


def main():
    with mock_aws():
        run("moto")
    spec = importlib.util.spec_from_file_location(
        "fidelity_server", os.path.join(os.path.dirname(__file__), "server.py"))
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    server.transactions_without_table_copies()
    with mock_aws():
        run("fidelity layer")


if __name__ == "__main__":
    main()
