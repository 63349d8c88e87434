"""Write the Helm chart's CRD templates from crds/ (run by `make crds`; `--check` for CI).

Each crds/<file>.yaml becomes helm/switchboard/templates/crd-<name>.yaml holding the same
documents, byte for byte, inside `{{- if .Values.crds.enabled }}`, with the chart's labels and,
when `crds.keep` is set, the `helm.sh/resource-policy: keep` annotation added under each
`metadata.name`. crds/ itself is generated from the pydantic models (never edit either).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"
TEMPLATES = ROOT / "helm" / "switchboard" / "templates"
# The line after which the chart's metadata goes: a CRD's `metadata.name`.
NAME_LINE = re.compile(r"^metadata:\n  name: [^\n]+\n", re.MULTILINE)
METADATA = """\
  labels:
    {{- include "switchboard.labels" (dict "root" $ "component" "crds") | nindent 4 }}
  {{- if .Values.crds.keep }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
"""


def template_name(crd_file: str) -> str:
    """crds/switchboard.dev_routingpolicies.yaml -> crd-routingpolicies.yaml."""
    return "crd-" + crd_file.removeprefix("switchboard.dev_")


def chart_template(crd_file: str, text: str) -> str:
    """The chart template for one crds/ file's text."""
    if "{{" in text or "}}" in text:
        raise ValueError(f"crds/{crd_file} holds '{{{{' or '}}}}', which Helm would evaluate")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()
    wrapped, count = NAME_LINE.subn(lambda m: m.group(0) + METADATA, body + "\n")
    if count != body.count("kind: CustomResourceDefinition"):
        raise ValueError(f"crds/{crd_file}: every CRD needs `metadata:` then `  name:`")
    header = (
        f"{{{{- /* Generated from crds/{crd_file} by hack/chart_crds.py (make crds). "
        "Do not edit. */}}\n"
    )
    return f"{header}{{{{- if .Values.crds.enabled }}}}\n{wrapped}{{{{- end }}}}\n"


def chart_templates(crds: Path = CRDS) -> dict[str, str]:
    """Template file name -> content, for every file in `crds`."""
    return {
        template_name(path.name): chart_template(path.name, path.read_text())
        for path in sorted(crds.glob("*.yaml"))
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a template is stale")
    parser.add_argument("--out", type=Path, default=TEMPLATES, help="templates directory")
    args = parser.parse_args(argv)
    wanted = chart_templates()
    stale = [
        name
        for name, text in wanted.items()
        if not (args.out / name).is_file() or (args.out / name).read_text() != text
    ]
    extra = sorted(p.name for p in args.out.glob("crd-*.yaml") if p.name not in wanted)
    if args.check:
        for name in [*stale, *extra]:
            print(f"{args.out / name} is out of date: run `make crds`", file=sys.stderr)
        return 1 if stale or extra else 0
    for name in stale:
        (args.out / name).write_text(wanted[name])
    for name in extra:
        (args.out / name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
