"""podpatch: golden pods (tests/golden/podpatch/<case>.in.yaml -> .out.yaml), with the patch
applied by an independent RFC 6902 implementation (jsonpatch), and the options it reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from switchboard.api import names
from switchboard.config.model import InjectorSettings
from switchboard.operator.podpatch import (
    InjectionOptions,
    PolicyInfo,
    PolicyMissing,
    ProviderKey,
    injection,
    options_of,
    policy_info,
    policy_name,
)

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "podpatch"
CASES = sorted(p.name.removesuffix(".in.yaml") for p in GOLDEN.glob("*.in.yaml"))
POD_ANNOTATIONS = {
    value
    for key, value in vars(names).items()
    if key.startswith("ANNOTATION_") and value != names.ANNOTATION_CONFIG_HASH
}


def _outcome(given: dict[str, Any]) -> tuple[dict[str, Any], InjectorSettings, Any]:
    pod = given["pod"]
    settings = InjectorSettings.model_validate(given.get("settings", {}))
    options = options_of(pod)
    policy = (
        policy_info(given["policy"])
        if "policy" in given
        else PolicyMissing(
            policy_name(options, settings),
            f"does not exist in namespace {pod['metadata']['namespace']}",
        )
    )
    decision = injection(pod, options, policy, settings)
    patched = jsonpatch.apply_patch(pod, list(decision.patch))
    got = {
        "result": decision.result,
        "refuse": decision.refuse,
        "warnings": list(decision.warnings),
        "pod": patched,
    }
    return got, settings, policy


@pytest.mark.parametrize("case", CASES)
def test_golden_pod_is_patched_as_stored(case: str, update_golden: bool) -> None:
    given = yaml.safe_load((GOLDEN / f"{case}.in.yaml").read_text())
    got, settings, policy = _outcome(given)
    out = GOLDEN / f"{case}.out.yaml"
    if update_golden:
        out.write_text(yaml.safe_dump(got, sort_keys=False, width=100))
    assert out.is_file(), f"{out.name} is missing: run pytest --update-golden and review it"
    assert got == yaml.safe_load(out.read_text())

    again = injection(got["pod"], options_of(got["pod"]), policy, settings)
    assert again.patch == (), "injecting the patched pod again must change nothing"


def test_every_case_has_an_output_and_every_output_a_case() -> None:
    outputs = sorted(p.name.removesuffix(".out.yaml") for p in GOLDEN.glob("*.out.yaml"))
    assert outputs == CASES


def test_annotation_constants_and_option_fields_agree_both_ways() -> None:
    aliases = {field.alias for field in InjectionOptions.model_fields.values()}
    assert aliases == POD_ANNOTATIONS


@pytest.mark.parametrize("value", ["True", "TRUE", "yes", "1", "on", "", "false"])
def test_only_the_exact_string_true_opts_in(value: str) -> None:
    assert InjectionOptions.from_annotations({names.ANNOTATION_INJECT: value}).inject is False
    assert InjectionOptions.from_annotations({names.ANNOTATION_INJECT: "true"}).inject is True


def test_options_ignore_other_annotations_and_blank_values() -> None:
    options = InjectionOptions.from_annotations(
        {"inject": "true", names.ANNOTATION_POLICY: "", names.ANNOTATION_TEAM: "care"}
    )
    assert (options.inject, options.policy, options.feature, options.team) == (
        False,
        None,
        None,
        "care",
    )
    assert policy_name(options, InjectorSettings()) == "default"


def test_policy_info_takes_secret_keys_once_and_skips_env_and_broken_keys() -> None:
    policy = {
        "metadata": {"name": "p"},
        "spec": {
            "providers": [
                {"name": "openai-eu", "apiKey": {"secretKeyRef": {"name": "s", "key": "a"}}},
                {"name": "openai_eu", "apiKey": {"secretKeyRef": {"name": "t", "key": "b"}}},
                {"name": "local", "apiKey": {"env": "LOCAL_KEY"}},
                {"name": "broken", "apiKey": {"secretKeyRef": {"name": "s"}}},
                {"name": "open"},
            ]
        },
    }
    assert policy_info(policy) == PolicyInfo(
        "p", (ProviderKey("SWITCHBOARD_KEY_OPENAI_EU", "s", "a"),)
    )
    assert policy_info(policy).config_map == "switchboard-p"
    assert policy_info({"metadata": {"name": "q"}, "spec": None}) == PolicyInfo("q")
