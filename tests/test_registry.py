import pytest

import xwq
from xwq.registry import Registry, UnknownNameError


def test_register_by_decorator_and_assignment():
    registry = Registry("thing")

    @registry.register("a")
    class A: ...

    registry["b"] = int
    assert registry["a"] is A and registry.get("b") is int
    assert set(registry) == {"a", "b"} and len(registry) == 2


def test_unknown_name_lists_choices_and_suggests_closest():
    registry = Registry("env")
    registry["simple_spread"] = object
    registry["matrix_game"] = object
    with pytest.raises(KeyError) as info:
        registry["simple_sprad"]
    message = str(info.value)
    assert isinstance(info.value, UnknownNameError)
    assert "unknown env 'simple_sprad'" in message
    assert "['matrix_game', 'simple_spread']" in message
    assert "Did you mean 'simple_spread'?" in message


def test_lazy_entry_missing_package_raises_real_import_error_with_pip_line():
    registry = Registry("env")
    registry.register_lazy("fancy", "xwq_no_such_package.envs:Fancy",
                           install="pip install xwq-no-such-package")
    assert "fancy" in registry  # listed, not imported yet
    with pytest.raises(ImportError, match="pip install xwq-no-such-package"):
        registry["fancy"]


def test_lazy_entry_resolves_on_lookup():
    registry = Registry("thing")
    registry.register_lazy("ordered", "collections:OrderedDict")
    from collections import OrderedDict
    assert registry["ordered"] is OrderedDict


def test_package_registries_hold_the_builtins():
    assert {"IQL", "VDN", "QMIX", "WQMIX"} <= set(xwq.REGISTRY_AGENT)
    assert {"QMIX_Learner", "WQMIX_Learner"} <= set(xwq.REGISTRY_LEARNER)
    assert {"Mixing_Q_network", "Weighted_Mixing_Q_network"} <= set(xwq.REGISTRY_POLICY)
    assert {"Basic_MLP", "Basic_RNN"} <= set(xwq.REGISTRY_REPRESENTATION)
    assert {"mpe", "matrix_game", "predator_prey"} <= set(xwq.REGISTRY_ENV)


def test_get_runner_unknown_names(run_dirs):
    with pytest.raises(KeyError, match="unknown method 'wqmx'.*Did you mean 'wqmix'"):
        xwq.get_runner("wqmx", "mpe", "simple_spread_v3", **run_dirs)
    with pytest.raises(KeyError, match="unknown env 'mep'.*Did you mean 'mpe'"):
        xwq.get_runner("wqmix", "mep", "simple_spread_v3", **run_dirs)
    with pytest.raises(KeyError, match="unknown env_id 'simple_spred_v3'.*simple_spread_v3"):
        xwq.get_runner("wqmix", "mpe", "simple_spred_v3", **run_dirs)


def test_missing_mpe2_raises_its_import_error_with_the_pip_line(monkeypatch, run_dirs):
    import sys

    for name in [m for m in sys.modules if m == "mpe2" or m.startswith("mpe2.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mpe2", None)  # what Python does for a missing package
    with pytest.raises(ImportError, match="pip install mpe2"):
        xwq.get_runner("qmix", "mpe", "simple_reference_v3", **run_dirs)
