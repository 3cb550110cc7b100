"""What ``exp.log`` buffers: one record of tuples per call (no dict, so the garbage collector
stops tracking it), its values read in the order of the last call's keys when the keys match."""

from __future__ import annotations

import gc

from mltrail import start


def test_records_hold_no_dict_and_the_collector_stops_tracking_them(settings, store):
    # the send lock held: no drain takes the records meanwhile
    with start("records", settings=settings, store=store) as exp, exp._writer._send_lock:
        for i in range(50):
            exp.log(
                {"loss": i / 10, "acc": 1.0 - i / 100} if i % 2 else {"acc": 0.5, "loss": i / 10}
            )
        records = list(exp._writer._calls)
    assert len(records) == 50
    for _, _, _, _, keys, values in records:
        assert type(keys) is tuple and type(values) is tuple and len(keys) == len(values)
    # a buffered record must not be promoted and rescanned by every full collection; a
    # gc.collect() that finds another thread's collection running returns at once, so a few
    # tries (a record holding a dict stays tracked through all of them)
    for _ in range(50):
        gc.collect()
        if not any(gc.is_tracked(r) for r in records):
            break
    assert not any(gc.is_tracked(r) for r in records)


def test_each_value_is_stored_under_its_key_whatever_the_order_and_keys_of_the_calls(
    settings, store
):
    with start("layouts", settings=settings, store=store) as exp:
        exp.log({"a": 1.0, "b": 2.0})
        exp.log({"b": 3.0, "a": 4.0})  # the last call's keys, the other way round
        exp.log({"a": 5.0, "c": 6.0})  # as many keys, one of them another
        exp.log({"a": 7})  # fewer keys, an int
        exp.log({"a": 8.0})  # one key, as the last call
        exp.log({"c": 9})  # one key, another one, an int
        ids = exp.project_id, exp.experiment_id
    stored = {k: store.read_series(*ids, k, "train") for k in "abc"}
    assert stored["a"].values.tolist() == [1.0, 4.0, 5.0, 7.0, 8.0]
    assert stored["a"].iterations.tolist() == [0, 1, 2, 3, 4]
    assert stored["b"].values.tolist() == [2.0, 3.0]
    assert stored["c"].values.tolist() == [6.0, 9.0]
    assert stored["c"].iterations.tolist() == [2, 5]
