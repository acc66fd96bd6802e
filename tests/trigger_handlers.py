"""Function-sink handlers used by tests/test_trigger_function.py.

Imported by worker processes as ``trigger_handlers:<name>`` (the tests put
this directory on the workers' PYTHONPATH). ``FJORD_TEST_OUT``, when set,
names a file where a handler appends what it received, one JSON line per call.
"""

from __future__ import annotations

import asyncio
import json
import os
import time


def _record(event) -> None:
    out = os.environ.get("FJORD_TEST_OUT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "trigger": os.environ.get("FJORD_TRIGGER"),
                                "event": event}) + "\n")


def ok(event):
    print("handler output goes to stderr, not into the protocol")
    _record(event)


async def ok_async(event):
    await asyncio.sleep(0)
    _record(event)
    return {"batchItemFailures": []}


def boom(event):
    raise ValueError("boom")


def fail_second_by_sequence(event):
    """Reports the second record failed, by SequenceNumber (as DynamoDB handlers do)."""
    return {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["dynamodb"]["SequenceNumber"]}]}


def fail_first_by_id(event):
    return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["eventID"]}]}


def fail_unknown(event):
    return {"batchItemFailures": [{"itemIdentifier": "no-such-record"}]}


def hang(event):
    time.sleep(3600)


def exit_hard(event):
    os._exit(3)


def write_back(event):
    """Counts the changes it sees in Fjord, through a client tagged with the
    trigger's origin, so its own write does not trigger it again."""
    from triggers.sinks.context import fjord_client

    client = fjord_client()
    for rec in event["Records"]:
        client.incr("seen")
    _record({"origin": client.execute_command("FJORD.ORIGIN").decode(), "records": len(event["Records"])})
    client.close()


def lambda_style(event, context):
    """A handler written for AWS Lambda: (event, context)."""
    _record({"function_name": context.function_name, "request_id": context.aws_request_id,
             "arn": context.invoked_function_arn, "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 5000})
