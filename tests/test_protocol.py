import numpy as np
import pytest

from ciksim import Protocol
from ciksim.errors import ProtocolError
from ciksim.models.culture import culture_model
from ciksim.protocol import builtin_protocols


def proto(*events, **top):
    return Protocol.from_dict({"name": "t", "events": list(events), **top})


def test_builtin_protocols_load_and_validate():
    names = builtin_protocols()
    assert {"cik-standard", "cik-gmp", "lak", "cik-no-ifng", "cik-il2-1000"} <= set(names)
    model = culture_model()
    for n in names:
        p = Protocol.load(n)
        assert p.harvest_day == 21
        p.bind(model)
        days = [e.day for e in p.events]
        assert days == sorted(days)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"day": 1, "action": "fed"}, r"events\[0\]\.action: unknown action 'fed'"),
        ({"day": 1, "action": "set", "values": {"IL2": 5}, "dose": 3}, r"unknown field\(s\) dose"),
        ({"day": -1, "action": "harvest"}, r"events\[0\]\.day = -1: must be >= 0"),
        ({"day": 1, "action": "set", "values": {"IL2": "-500 IU/mL"}}, "negative"),
        ({"day": 1, "action": "feed"}, "exactly one of volume_fraction or volume"),
        ({"action": "harvest"}, "exactly one of day, days or every"),
        ({"days": [3, 2], "action": "harvest"}, "strictly increasing"),
        ({"every": 2, "from": 1, "action": "harvest"}, "needs 'from' and 'until'"),
        ({"day": 1, "action": "split", "max_density": "2e6 cells/mL",
          "target_density": "1e6 cells/mL", "cells": "burn"}, "'keep' or 'discard'"),
    ],
)
def test_bad_events_name_field_and_fix(event, message):
    with pytest.raises(ProtocolError, match=message):
        proto(event)


def test_events_out_of_order():
    with pytest.raises(ProtocolError, match=r"events\[1\].*before the previous event"):
        proto({"day": 5, "action": "harvest"}, {"day": 2, "action": "harvest"})


def test_unknown_top_level_field_and_missing_name():
    with pytest.raises(ProtocolError, match="unknown field"):
        Protocol.from_dict({"name": "x", "evnts": []})
    with pytest.raises(ProtocolError, match="missing field 'name'"):
        Protocol.from_dict({"events": []})


def test_unknown_protocol_and_bad_file(tmp_path):
    with pytest.raises(ProtocolError, match=r"unknown protocol 'cik-turbo'.*cik-standard"):
        Protocol.load("cik-turbo")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[[events]\n")
    with pytest.raises(ProtocolError, match="not valid TOML"):
        Protocol.load(bad)


def test_binding_checks_species_and_units():
    model = culture_model()
    with pytest.raises(ProtocolError, match="unknown species 'IL3'"):
        proto({"day": 1, "action": "set", "values": {"IL3": 5}}).bind(model)
    with pytest.raises(ProtocolError, match="does not convert to 'IU/mL'"):
        proto({"day": 1, "action": "set", "values": {"IL2": "5 ng/mL"}}).bind(model)
    with pytest.raises(ProtocolError, match="target_density <= max_density"):
        proto({"day": 1, "action": "split", "max_density": "1e6 cells/mL",
               "target_density": "2e6 cells/mL"}).bind(model)


def _state(model, density=3e6, volume=10.0, il2=100.0):
    names = model.species_names
    y = np.zeros((len(names), 1))
    y[names.index("T_act")] = density * volume
    y[names.index("V")] = volume
    y[names.index("IL2")] = il2
    y[names.index("Medium")] = 0.2
    return y, names


def test_feed_dilutes_and_tops_up():
    model = culture_model()
    (ev,) = proto({"day": 1, "action": "feed", "volume_fraction": 1.0,
                   "top_up": {"IL2": "300 IU/mL"}}).bind(model)
    y, names = _state(model, il2=100.0)
    y[names.index("OKT3")] = 50
    kept = np.ones(1)
    ev.apply(y, kept, None)
    assert y[names.index("V"), 0] == 20.0
    assert y[names.index("OKT3"), 0] == 25.0  # diluted 1:1
    assert y[names.index("Medium"), 0] == pytest.approx(0.6)  # mixed with fresh (1.0)
    assert y[names.index("IL2"), 0] == 300.0  # 50 after dilution, topped up to 300
    assert y[names.index("T_act"), 0] == 3e7  # cells unchanged


@pytest.mark.parametrize("mode", ["keep", "discard"])
def test_split_to_target_density(mode):
    model = culture_model()
    (ev,) = proto({"day": 1, "action": "split", "max_density": "2e6 cells/mL",
                   "target_density": "1e6 cells/mL", "cells": mode}).bind(model)
    y, names = _state(model, density=3e6, volume=10.0)
    kept = np.ones(1)
    ev.apply(y, kept, None)
    cells = y[names.index("T_act"), 0]
    vol = y[names.index("V"), 0]
    assert cells / vol == pytest.approx(1e6)
    if mode == "keep":
        assert cells == 3e7 and vol == pytest.approx(30.0) and kept[0] == 1.0
    else:
        assert vol == pytest.approx(10.0) and cells == pytest.approx(1e7)
        assert kept[0] == pytest.approx(1 / 3)


def test_split_leaves_cultures_below_the_maximum_alone():
    model = culture_model()
    (ev,) = proto({"day": 1, "action": "split", "max_density": "2e6 cells/mL",
                   "target_density": "1e6 cells/mL"}).bind(model)
    y, _ = _state(model, density=1.5e6)
    before = y.copy()
    ev.apply(y, np.ones(1), None)
    np.testing.assert_array_equal(y, before)


def test_every_expands_and_without_removes():
    p = proto({"every": 3, "from": 4, "until": 19, "action": "feed", "volume_fraction": 0.5})
    assert [e.day for e in p.events] == [4, 7, 10, 13, 16, 19]
    assert [e.day for e in p.without("feed", after=10).events] == [4, 7, 10]
