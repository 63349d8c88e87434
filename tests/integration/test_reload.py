"""Hot reload of the sidecar's config file while traffic flows: real mock provider and sidecar
processes, the official openai SDK as the client.

Good edits are picked up (a file replaced, a file rewritten in place, a ConfigMap volume's
`..data` symlink swap); broken edits are logged with their reason, counted, and leave the old
config serving; requests in flight finish on the config they started with; no request fails
because of a reload. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from tests.integration.conftest import MockFactory, SidecarFactory, client_for
from tests.support.mock_provider import MockProvider
from tests.support.sidecar import Sidecar, policy, write_manifests
from tests.support.wire import metric, price_field, request, wait_until

pytestmark = pytest.mark.integration

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
MODELS = ("old-model", "new-model", "third-model")
RELOAD_DEADLINE = 5.0
SLOW_MS = 1500


def routing(mock: MockProvider, model: str, *, provider: str = "mock") -> dict[str, Any]:
    """A policy whose one (default) route sends everything to `model` on `mock`."""
    return policy(
        providers=[{"name": provider, "baseURL": mock.url}],
        models=[{"name": m, "provider": provider, "price": price_field("1", "2")} for m in MODELS],
        routes=[{"name": f"to-{model}", "targets": [{"model": model}]}],
    )


def write_text(path: Path, text: str) -> None:
    """Replace a file atomically, as kubectl-driven tooling and most editors do."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def config_hash(sidecar: Sidecar) -> str:
    doc = request(sidecar.base, "GET", "/readyz").json()
    value: str = doc["configHash"]
    return value


def reloads(sidecar: Sidecar, result: str) -> float:
    return metric(sidecar.base, "switchboard_config_reloads_total", result=result)


def wait_for_reloads(sidecar: Sidecar, result: str, count: int) -> None:
    wait_until(lambda: reloads(sidecar, result) == count, timeout=RELOAD_DEADLINE)


def wait_for_new_hash(sidecar: Sidecar, old: str) -> str:
    wait_until(lambda: config_hash(sidecar) != old, timeout=RELOAD_DEADLINE)
    return config_hash(sidecar)


@dataclass(frozen=True)
class Served:
    started: float
    model: str


@dataclass
class Traffic:
    """SDK chat requests in a loop on a few threads, recording each answer or failure."""

    sidecar: Sidecar
    threads: int = 2
    served: list[Served] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Traffic:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=10)

    def _run(self) -> None:
        client = client_for(self.sidecar, timeout=10)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                raw = client.chat.completions.with_raw_response.create(model="any", messages=HELLO)
                raw.parse()
                served = Served(started, raw.headers["x-switchboard-model"])
            except Exception as exc:  # every failure is a finding: keep it for the assertion
                with self._lock:
                    self.failures.append(repr(exc))
                continue
            with self._lock:
                self.served.append(served)

    def count(self) -> int:
        with self._lock:
            return len(self.served)

    def models_since(self, moment: float) -> set[str]:
        """The models of the answers to requests that started after `moment`."""
        with self._lock:
            return {s.model for s in self.served if s.started > moment}

    def wait_for_answers(self, model: str, since: float, count: int = 10) -> None:
        """Until `count` requests started after `since` were answered by `model` (and only it)."""

        def enough() -> bool:
            with self._lock:
                after = [s.model for s in self.served if s.started > since]
            assert set(after) <= {model}, f"answered after the swap by {set(after)}"
            return len(after) >= count

        wait_until(enough, timeout=RELOAD_DEADLINE)


def _start(sidecars: SidecarFactory, doc: Mapping[str, Any]) -> tuple[Sidecar, Path]:
    sidecar = sidecars(doc)
    path: Path = sidecar.config  # type: ignore[attr-defined]
    return sidecar, path


def test_good_edit_while_traffic_flows_switches_model_without_failures(
    mocks: MockFactory, sidecars: SidecarFactory
) -> None:
    mock = mocks("reload")
    sidecar, path = _start(sidecars, routing(mock, "old-model"))
    old = config_hash(sidecar)
    with Traffic(sidecar) as traffic:
        traffic.wait_for_answers("old-model", since=0.0)
        write_manifests(path, routing(mock, "new-model"))
        wait_for_new_hash(sidecar, old)
        swapped = time.monotonic()
        traffic.wait_for_answers("new-model", since=swapped)
    assert traffic.failures == []
    assert reloads(sidecar, "ok") == 1
    assert reloads(sidecar, "error") == 0
    assert "config reloaded: policy test" in sidecar.log()
    assert set(mock.stats()["by_model"]) == {"old-model", "new-model"}


BROKEN_EDITS = [
    # (what, file content, a piece of the logged reason)
    ("invalid YAML", "apiVersion: switchboard.dev/v1alpha1\nspec: [unclosed\n", "not valid YAML"),
    ("schema-invalid policy", None, "spec.routes[0].strategy"),
    ("unknown SidecarConfig version", None, "version"),
]


def _broken_text(what: str, good: Mapping[str, Any], text: str | None) -> str:
    if text is not None:
        return text
    doc = yaml.safe_load(yaml.safe_dump(dict(good)))
    if what == "schema-invalid policy":
        doc["spec"]["routes"][0]["strategy"] = "fastest-please"
        return yaml.safe_dump(doc)
    sidecar_config = {"kind": "SidecarConfig", "version": 2, "policy": "test", "spec": doc["spec"]}
    return yaml.safe_dump(sidecar_config)


def test_broken_edits_are_logged_counted_and_the_old_config_keeps_serving(
    mocks: MockFactory, sidecars: SidecarFactory
) -> None:
    mock = mocks("reload")
    good = routing(mock, "old-model")
    sidecar, path = _start(sidecars, good)
    old = config_hash(sidecar)
    with Traffic(sidecar) as traffic:
        traffic.wait_for_answers("old-model", since=0.0)
        for errors, (what, text, reason) in enumerate(BROKEN_EDITS, start=1):
            write_text(path, _broken_text(what, good, text))
            wait_for_reloads(sidecar, "error", errors)
            assert reason in sidecar.log(), what
            assert config_hash(sidecar) == old, what
            traffic.wait_for_answers("old-model", since=time.monotonic(), count=5)
        log = sidecar.log()
        rejected = [line for line in log.splitlines() if "config reload rejected" in line]
        assert len(rejected) == len(BROKEN_EDITS), log
        assert all(f"keeping config {old}" in line for line in rejected)

        write_manifests(path, routing(mock, "new-model"))
        wait_for_new_hash(sidecar, old)
        traffic.wait_for_answers("new-model", since=time.monotonic())
    assert traffic.failures == []
    assert reloads(sidecar, "error") == len(BROKEN_EDITS)
    assert reloads(sidecar, "ok") == 1
    assert sidecar.alive()


def test_file_rewritten_in_place_is_picked_up_once_complete(
    mocks: MockFactory, sidecars: SidecarFactory
) -> None:
    mock = mocks("reload")
    sidecar, path = _start(sidecars, routing(mock, "old-model"))
    old = config_hash(sidecar)
    text = yaml.safe_dump(routing(mock, "new-model"), sort_keys=False)
    with Traffic(sidecar) as traffic:
        traffic.wait_for_answers("old-model", since=0.0)
        with path.open("w") as f:  # truncates: the sidecar may see the file empty, then half
            f.write(text[: len(text) // 2])  # an editor or a copy caught half-way
            f.flush()
            wait_until(lambda: reloads(sidecar, "error") >= 1, timeout=RELOAD_DEADLINE)
            assert config_hash(sidecar) == old
            traffic.wait_for_answers("old-model", since=time.monotonic(), count=5)
            f.write(text[len(text) // 2 :])
        wait_for_new_hash(sidecar, old)
        traffic.wait_for_answers("new-model", since=time.monotonic())
    assert reloads(sidecar, "ok") == 1
    assert traffic.failures == []


class ConfigMapVolume:
    """A directory laid out like kubelet's ConfigMap volume, updated the way kubelet does it:
    `config.yaml -> ..data/config.yaml`, `..data -> ..<timestamp>`, and an update writes a new
    timestamped directory, points `..data_tmp` at it, renames that over `..data` (atomic), and
    removes the old directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir()

    def write(self, files: Mapping[str, str]) -> None:
        self.generation += 1
        stamp = f"..2026_01_01_00_00_{self.generation:02d}.{self.generation}"
        (self.root / stamp).mkdir()
        for name, text in files.items():
            (self.root / stamp / name).write_text(text)
        data = self.root / "..data"
        previous = os.readlink(data) if data.is_symlink() else None
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(stamp)
        tmp.replace(data)
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(Path("..data") / name)
        if previous is not None:
            old = self.root / previous
            for child in old.iterdir():
                child.unlink()
            old.rmdir()


@pytest.mark.parametrize("target", ["directory", "file"])
def test_configmap_symlink_swap_is_picked_up(
    mocks: MockFactory, sidecars: SidecarFactory, tmp_path: Path, target: str
) -> None:
    mock = mocks("reload")
    volume = ConfigMapVolume(tmp_path / "config")
    volume.write({"config.yaml": yaml.safe_dump(routing(mock, "old-model"))})
    config = volume.root if target == "directory" else volume.root / "config.yaml"
    sidecar = sidecars(config=config)
    old = config_hash(sidecar)
    with Traffic(sidecar) as traffic:
        traffic.wait_for_answers("old-model", since=0.0)
        volume.write({"config.yaml": yaml.safe_dump(routing(mock, "new-model"))})
        newer = wait_for_new_hash(sidecar, old)
        traffic.wait_for_answers("new-model", since=time.monotonic())
        volume.write({"config.yaml": yaml.safe_dump(routing(mock, "third-model"))})
        wait_for_new_hash(sidecar, newer)
        traffic.wait_for_answers("third-model", since=time.monotonic())
    assert traffic.failures == []
    assert reloads(sidecar, "ok") == 2
    assert reloads(sidecar, "error") == 0


@pytest.fixture
def two_mocks(mocks: MockFactory) -> Iterator[tuple[MockProvider, MockProvider]]:
    yield mocks("before"), mocks("after")


def _slow_chat(client: openai.OpenAI, *, stream: bool) -> tuple[str, str]:
    """One chat request: (x-switchboard-model, the text), read to the end."""
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model="any", messages=HELLO, stream=True, max_tokens=4
        ) as response:
            model = response.headers["x-switchboard-model"]
            chunks = list(response.parse())
        assert all(c.model == "old-model" for c in chunks)
        return model, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    raw = client.chat.completions.with_raw_response.create(model="any", messages=HELLO)
    return raw.headers["x-switchboard-model"], raw.parse().choices[0].message.content or ""


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_request_in_flight_finishes_on_the_config_it_started_with(
    two_mocks: tuple[MockProvider, MockProvider], sidecars: SidecarFactory, stream: bool
) -> None:
    before, after = two_mocks
    # Plain: the answer comes after SLOW_MS; stream: 4 deltas SLOW_MS / 4 apart.
    delay = SLOW_MS if not stream else SLOW_MS // 4
    before.set_faults({"fault": "slow", "model": "old-model", "delay_ms": delay, "times": 1})
    sidecar, path = _start(sidecars, routing(before, "old-model", provider="before"))
    old = config_hash(sidecar)
    client = client_for(sidecar, timeout=10)
    with ThreadPoolExecutor(1) as pool:
        slow: Future[tuple[str, str]] = pool.submit(_slow_chat, client, stream=stream)
        wait_until(lambda: before.stats()["requests"] == 1, timeout=RELOAD_DEADLINE)
        # The new config drops the old provider and model altogether.
        write_manifests(path, routing(after, "new-model", provider="after"))
        wait_for_new_hash(sidecar, old)
        fresh = client.chat.completions.with_raw_response.create(model="any", messages=HELLO)
        assert fresh.headers["x-switchboard-model"] == "new-model"
        assert fresh.headers["x-switchboard-provider"] == "after"
        assert not slow.done(), "the slow request ended before the reload: nothing was tested"
        model, text = slow.result(timeout=10)
    assert model == "old-model"
    assert text == ("tok " * 4 if stream else "tok " * 16)
    assert before.stats()["served"] == 1
    assert set(after.stats()["by_model"]) == {"new-model"}
