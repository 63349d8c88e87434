# One image for the operator and the sidecar: `switchboard operator ...`, `switchboard sidecar ...`.
#   docker build -t switchboard:0.1.0 .
FROM python:3.11-slim AS build
RUN python -m venv /opt/switchboard
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar sidecar
COPY operator operator
RUN /opt/switchboard/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.11-slim
RUN groupadd --system --gid 65532 switchboard \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin switchboard
COPY --from=build /opt/switchboard /opt/switchboard
ENV PATH=/opt/switchboard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so that Kubernetes can check runAsNonRoot; the chart runs the operator, and the
# webhook the sidecar, as this uid.
USER 65532:65532
ENTRYPOINT ["switchboard"]
CMD ["--help"]
