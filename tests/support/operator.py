"""`switchboard operator` as a real process against a cluster, with its /metrics read back."""

from __future__ import annotations

import re
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ServerProcess

READY = re.compile(r"switchboard operator metrics on http://[\d.]+:(?P<port>\d+)/metrics")


class OperatorProcess(ServerProcess):
    """An operator serving `namespace`; ready once /metrics is served (kopf starts right after)."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        *,
        args: Sequence[str] = (),
        budget_interval: float = 1.0,
    ) -> None:
        argv = [sys.executable, "-m", "switchboard.cli", "operator", "--namespace", namespace]
        argv += ["--metrics-host", "127.0.0.1", "--metrics-port", "0"]
        argv += ["--budget-interval", str(budget_interval), *args]
        super().__init__(argv, READY, env={"KUBECONFIG": str(kubeconfig)})

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels`."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )
