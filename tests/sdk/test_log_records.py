"""What ``exp.log`` buffers: one tuple per call, its values in it (no dict nor tuple of
their own, so the garbage collector stops tracking it at its first collection), its values
read in the order of the last call's keys when the keys match."""

from __future__ import annotations

import gc

from mltrail import start


def test_records_hold_no_container_and_one_young_collection_untracks_them(settings, store):
    # the send lock held: no drain takes the records meanwhile
    with start("records", settings=settings, store=store) as exp, exp._writer._send_lock:
        exp.log({"loss": 0.0, "acc": 1.0})  # its keys' tuple, made now, becomes old
        gc.collect()
        gc.disable()  # no collection between the calls and the one below
        try:
            for i in range(1, 50):
                exp.log(
                    {"loss": i / 10, "acc": 1 - i / 100} if i % 2 else {"acc": 0.5, "loss": i / 10}
                )
            records = list(exp._writer._calls)
            # another thread's collection running makes this one return at once: a few tries
            # (collect(0) leaves the generations past the young one alone)
            for _ in range(50):
                gc.collect(0)
                tracked = sum(map(gc.is_tracked, records[1:]))
                if not tracked:
                    break
        finally:
            gc.enable()
    assert len(records) == 50
    for record in records:
        keys, values = record[4], record[5:]
        assert type(keys) is tuple and keys == ("loss", "acc")
        assert all(type(value) is float for value in values) and len(values) == 2
    # untracked by the first collection of the young generation: a record holding a tuple of
    # its own (looked at before it) was promoted still tracked, and full collections, visiting
    # every object of the process, came with them
    assert tracked == 0


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


def test_key_sets_logged_in_turn_keep_one_layout_each_and_every_value(settings, store):
    """A train dict and a validation dict in turn (one of ints, checked in full each time):
    each set of keys read through the one layout kept for it, so its records share one keys
    tuple (the buffer finds runs by identity); past the layouts kept, still every value."""
    from mltrail.sdk.inputs import Layouts

    with start("turns", settings=settings, store=store) as exp:
        with exp._writer._send_lock:  # no drain takes the records meanwhile
            for i in range(6):
                exp.log({"loss": float(i), "acc": -float(i)}, iteration=i)
                exp.log({"val_loss": i + 0.5, "val_acc": i}, iteration=i, phase="validation")
            records = list(exp._writer._calls)
        for i in range(Layouts.LIMIT + 6):  # more key sets than are kept
            exp.log({f"k{i % (Layouts.LIMIT + 3)}": float(i), "acc": 1.0}, iteration=100 + i)
        ids = exp.project_id, exp.experiment_id
    assert len({id(r[4]) for r in records[0::2]}) == len({id(r[4]) for r in records[1::2]}) == 1
    val_acc = store.read_series(*ids, "val_acc", "validation")
    assert val_acc.values.tolist() == [float(i) for i in range(6)]
    assert store.read_series(*ids, "loss", "train").values.tolist() == [float(i) for i in range(6)]
    acc = store.read_series(*ids, "acc", "train")
    assert acc.values.tolist() == [-float(i) for i in range(6)] + [1.0] * (Layouts.LIMIT + 6)
    k0 = store.read_series(*ids, "k0", "train")
    assert k0.iterations.tolist() == [100, 100 + Layouts.LIMIT + 3]
