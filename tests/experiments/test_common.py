"""What the runners share (propetl_adapters/experiments/common.py)."""

import numpy

from propetl_adapters.experiments.common import RECORDED_PACKAGES, installed_version, machine, versions


def test_machine_names_the_cpu_and_its_native_bf16_instructions(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16 amx_tile\n"
                       "processor\t: 1\nmodel name\t: Some Xeon\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16 amx_tile\n")
    found = machine(str(cpuinfo))
    assert found["cpu"] == "Some Xeon"
    assert found["bf16_instructions"] == ["amx_bf16", "avx512_bf16"]
    assert found["torch_threads"] >= 1

    cpuinfo.write_text("model name\t: Older CPU\nflags\t\t: fpu avx2\n")
    assert machine(str(cpuinfo))["bf16_instructions"] == []


def test_machine_falls_back_to_the_platform_without_cpuinfo(tmp_path):
    found = machine(str(tmp_path / "missing"))
    assert isinstance(found["cpu"], str) and found["cpu"]
    assert found["bf16_instructions"] == []


def test_versions_carry_the_machine():
    assert versions()["machine"] == machine()


def test_versions_name_the_unpinned_packages_and_none_for_a_missing_one():
    assert versions()["packages"]["numpy"] == numpy.__version__
    assert set(versions()["packages"]) == set(RECORDED_PACKAGES)
    assert installed_version("no-such-distribution-here") is None
