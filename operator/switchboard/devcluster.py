"""Edge: a local Kubernetes control plane on 127.0.0.1 for tests and `switchboard dev cluster`.

Owns etcd, kube-apiserver and kube-controller-manager as child processes: their
certificates, kubeconfigs, data directory, logs, readiness and shutdown; and the
background process behind `switchboard dev cluster up|down|env`. No scheduler or kubelet
runs, so no pod ever runs. The binaries come from `hack/k8s/build.sh` (built with Go, or
taken from `KUBEBUILDER_ASSETS`); etcd may also come from PATH (Debian's etcd-server).
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "k8s" / "build.sh"
SERVICE_CIDR = "10.0.0.0/24"
APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# The default controllers minus those that act on nodes (no kubelet runs here). The cloud
# controllers live in cloud-controller-manager, which does not run either.
CONTROLLERS = ",".join(
    [
        "*",
        "-node-ipam-controller",
        "-node-lifecycle-controller",
        "-taint-eviction-controller",
        "-persistentvolume-attach-detach-controller",
    ]
)
STOP_GRACE_SECONDS = 10.0


class ClusterError(RuntimeError):
    """The control plane could not be built, started or found."""


def build_binaries(script: Path = BUILD_SCRIPT) -> Path:
    """Run build.sh (a no-op when the cache is warm) and return the directory it prints."""
    if not script.is_file():
        raise ClusterError(f"{script} not found: `switchboard dev` needs a source checkout")
    result = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise ClusterError(f"{script} failed (exit status {result.returncode})")
    return Path(lines[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tied_to_us(argv: Sequence[str]) -> list[str]:
    """`argv` run so that the kernel kills it when this process dies (Linux util-linux
    setpriv), so a crashed test run or `dev cluster` process leaves no control plane behind."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


# --- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    cert: bytes
    key: bytes


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


class _Authority:
    """A throwaway CA that issues the serving and client certificates."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name("switchboard-dev-ca")
        builder = self._builder(self.name, self.key.public_key())
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        builder = builder.add_extension(_key_usage(cert_sign=True), True)
        self.cert = builder.sign(self.key, hashes.SHA256())
        self.pair = _Pair(self.cert.public_bytes(serialization.Encoding.PEM), _pem_key(self.key))

    def _builder(
        self, subject: x509.Name, public: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        )

    def issue(
        self,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: Sequence[x509.GeneralName] = (),
    ) -> _Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(subject, key.public_key())
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        builder = builder.add_extension(_key_usage(cert_sign=False), True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _Pair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class ServingCertificate:
    """A throwaway CA and a serving certificate it issued, PEM (e.g. for an admission webhook:
    the server loads `cert` and `key`, the webhook configuration's caBundle is `ca`)."""

    ca: bytes
    cert: bytes
    key: bytes


def serving_certificate(*hosts: str) -> ServingCertificate:
    """A new CA and a certificate for `hosts` (IP addresses or DNS names; the first is the CN)."""
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    authority = _Authority()
    pair = authority.issue(_name(hosts[0]), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    return ServingCertificate(authority.pair.cert, pair.cert, pair.key)


def _kubeconfig(server: str, ca: bytes, client: _Pair, user: str) -> dict[str, Any]:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "switchboard-dev",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert),
                    "client-key-data": b64(client.key),
                },
            }
        ],
        "contexts": [
            {"name": "switchboard-dev", "context": {"cluster": "switchboard-dev", "user": user}}
        ],
        "current-context": "switchboard-dev",
    }


# --- processes ---------------------------------------------------------------------------


class _Process:
    """One control-plane process; its stdout and stderr go to `log`."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, *, append: bool = False) -> None:
        self.name = name
        self.log = log
        self._out: IO[bytes] = log.open("ab" if append else "wb")
        try:
            self._proc = subprocess.Popen(
                _tied_to_us(argv),
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches us; we stop them in order
            )
        except OSError as exc:
            self._out.close()
            raise ClusterError(f"cannot run {argv[0]}: {exc}") from exc

    def alive(self) -> bool:
        return self._proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} (exit status {self._proc.poll()}), {self.log}:\n" + "\n".join(text)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._out.close()


class LocalCluster:
    """etcd + kube-apiserver (+ kube-controller-manager when built) on free loopback ports.

    `data_dir` must be new or empty; it receives the certificates, kubeconfigs, etcd's data
    and one log per process (`logs/<name>.log`).
    """

    def __init__(self, bin_dir: Path, data_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.data_dir = data_dir
        self.kubeconfig = data_dir / "kubeconfig"
        self.port = 0
        self._processes: list[_Process] = []
        self._etcd_url = ""
        self._etcd = self._required("etcd")
        self._apiserver = self._required("kube-apiserver")
        self._kubectl = self._required("kubectl")
        self._controller_manager = self._binary("kube-controller-manager")

    @property
    def has_controller_manager(self) -> bool:
        """False with envtest assets, which ship no kube-controller-manager."""
        return self._controller_manager is not None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _binary(self, name: str) -> str | None:
        local = self.bin_dir / name
        return str(local) if os.access(local, os.X_OK) else shutil.which(name)

    def _required(self, name: str) -> str:
        if found := self._binary(name):
            return found
        hint = " (Debian: apt-get install etcd-server)" if name == "etcd" else ""
        raise ClusterError(f"{name} is neither in {self.bin_dir} nor on PATH{hint}")

    def _path(self, name: str) -> Path:
        return self.data_dir / name

    def _write(self, name: str, data: bytes) -> None:
        path = self._path(name)
        path.write_bytes(data)
        path.chmod(0o600)

    def _write_credentials(self) -> None:
        ca = _Authority()
        serving = ca.issue(
            _name("kube-apiserver"),
            ExtendedKeyUsageOID.SERVER_AUTH,
            [
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(next(ipaddress.IPv4Network(SERVICE_CIDR).hosts())),
                *(x509.DNSName(name) for name in APISERVER_NAMES),
            ],
        )
        admin = ca.issue(
            _name("switchboard-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH
        )
        manager = ca.issue(_name("system:kube-controller-manager"), ExtendedKeyUsageOID.CLIENT_AUTH)
        signing = ec.generate_private_key(ec.SECP256R1())
        for name, pair in (("ca", ca.pair), ("apiserver", serving), ("admin", admin)):
            self._write(f"{name}.crt", pair.cert)
            self._write(f"{name}.key", pair.key)
        self._write("sa.key", _pem_key(signing))
        self._write(
            "sa.pub",
            signing.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        for name, pair, user in (
            ("kubeconfig", admin, "switchboard-admin"),
            ("controller-manager.kubeconfig", manager, "system:kube-controller-manager"),
        ):
            config = _kubeconfig(self.server, ca.pair.cert, pair, user)
            self._write(name, yaml.safe_dump(config, sort_keys=False).encode())

    def start(self, timeout: float = 60.0) -> None:
        """Start everything and return once the API server is ready and, with a controller
        manager, the `default` namespace has its ServiceAccount and `kube-root-ca.crt`."""
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ClusterError(f"{self.data_dir} is not empty; a cluster needs a fresh data dir")
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self._write_credentials()
        deadline = time.monotonic() + timeout
        try:
            self._etcd_url = self._start_etcd()
            self._start("kube-apiserver", self._apiserver_argv(self._etcd_url))
            self._wait(deadline, "/readyz")
            if manager := self._controller_manager:
                self._start("kube-controller-manager", self._controller_manager_argv(manager))
                self._wait(deadline, "/api/v1/namespaces/default/serviceaccounts/default")
                self._wait(deadline, "/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, argv: Sequence[str]) -> None:
        self._processes.append(_Process(name, argv, self.data_dir / "logs" / f"{name}.log"))

    def _start_etcd(self) -> str:
        client, peer = (f"http://127.0.0.1:{_free_port()}" for _ in range(2))
        self._start(
            "etcd",
            [
                self._etcd,
                "--name=switchboard-dev",
                f"--data-dir={self._path('etcd')}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=switchboard-dev={peer}",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-outputs=stderr",
            ],
        )
        return client

    def _apiserver_argv(self, etcd_url: str) -> list[str]:
        p = self._path
        return [
            self._apiserver,
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={p('apiserver-certs')}",
            f"--tls-cert-file={p('apiserver.crt')}",
            f"--tls-private-key-file={p('apiserver.key')}",
            f"--client-ca-file={p('ca.crt')}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={p('sa.pub')}",
            f"--service-account-signing-key-file={p('sa.key')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Added to the defaults, which already include both webhook plugins.
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,"
            "MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            # Endpoints may not hold a loopback address, and no pod could reach it anyway.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ]

    def _controller_manager_argv(self, binary: str) -> list[str]:
        p = self._path
        return [
            binary,
            f"--kubeconfig={p('controller-manager.kubeconfig')}",
            f"--service-account-private-key-file={p('sa.key')}",
            f"--root-ca-file={p('ca.crt')}",
            f"--cluster-signing-cert-file={p('ca.crt')}",
            f"--cluster-signing-key-file={p('ca.key')}",
            "--use-service-account-credentials=true",
            f"--controllers={CONTROLLERS}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--profiling=false",
        ]

    def _status(self, path: str) -> int:
        """The HTTP status of an admin GET on `path`, or 0 when nothing answers."""
        context = ssl.create_default_context(cafile=self._path("ca.crt"))
        context.load_cert_chain(self._path("admin.crt"), self._path("admin.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        except OSError:
            return 0
        finally:
            conn.close()

    def _wait(self, deadline: float, path: str) -> None:
        status = 0
        while time.monotonic() < deadline:
            if dead := [p for p in self._processes if not p.alive()]:
                raise ClusterError(self._report(f"{dead[0].name} exited while starting"))
            status = self._status(path)
            if status == 200:
                return
            time.sleep(0.1)
        raise ClusterError(self._report(f"GET {path} did not answer 200 in time (last: {status})"))

    def _report(self, problem: str) -> str:
        return "\n".join([f"local control plane: {problem}", *(p.tail() for p in self._processes)])

    def restart_apiserver(self, timeout: float = 60.0) -> None:
        """Stop kube-apiserver and start it again on the same port and data: an API outage, as
        in an upgrade of the control plane. Returns once it is ready again."""
        index = next(i for i, p in enumerate(self._processes) if p.name == "kube-apiserver")
        old = self._processes[index]
        old.stop()
        argv = self._apiserver_argv(self._etcd_url)
        self._processes[index] = _Process(old.name, argv, old.log, append=True)
        self._wait(time.monotonic() + timeout, "/readyz")

    def alive(self) -> bool:
        return bool(self._processes) and all(p.alive() for p in self._processes)

    def stop(self) -> None:
        """Stop the processes, newest first: SIGTERM, then SIGKILL after a grace period."""
        while self._processes:
            self._processes.pop().stop()

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin; the caller checks `returncode`."""
        return subprocess.run(
            [self._kubectl, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def env_lines(self) -> list[str]:
        """Shell lines pointing kubectl and helm at this cluster."""
        return [f"export KUBECONFIG={self.kubeconfig}", f"export PATH={self.bin_dir}:$PATH"]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- `switchboard dev cluster up|down|env`: one cluster per directory, in the background ----


def default_dir() -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/switchboard/dev-cluster`."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "switchboard" / "dev-cluster"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat")
        # An exited child not yet reaped (a zombie) is not alive.
        return not stat.exists() or stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except ProcessLookupError:
        return False
    except OSError:
        return True


def _running_pid(directory: Path) -> int | None:
    """The pid of the background process serving the cluster in `directory`, if running."""
    try:
        pid = int(json.loads((directory / "state.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if _alive(pid) else None


def env_lines(directory: Path) -> list[str]:
    """The `export` lines of the cluster running in `directory`."""
    if _running_pid(directory) is None:
        raise ClusterError(f"no cluster runs in {directory}; start one: switchboard dev cluster up")
    return (directory / "env").read_text().splitlines()


def up(directory: Path, timeout: float = 120.0) -> list[str]:
    """Build if needed, start a cluster served by a detached process, return its env lines."""
    if _running_pid(directory) is not None:
        return env_lines(directory)
    bin_dir = build_binaries()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("state.json", "env"):
        (directory / stale).unlink(missing_ok=True)
    shutil.rmtree(directory / "data", ignore_errors=True)
    log = directory / "serve.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "switchboard.devcluster", str(directory), str(bin_dir)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _running_pid(directory) == child.pid:
            return env_lines(directory)
        if child.poll() is not None:
            raise ClusterError(f"the cluster did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    child.terminate()
    raise ClusterError(f"the cluster was not ready in {timeout:.0f} s; see {log}")


def down(directory: Path, timeout: float = 60.0) -> bool:
    """Stop the cluster running in `directory`; False when none was running."""
    pid = _running_pid(directory)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)  # its children die with it (see _tied_to_us)
            break
        time.sleep(0.1)
    return True


def _serve(directory: Path, bin_dir: Path) -> int:
    """The background process: run the cluster until SIGTERM, SIGINT or SIGHUP."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    cluster = LocalCluster(bin_dir, directory / "data")
    try:
        cluster.start()
        (directory / "env").write_text("\n".join(cluster.env_lines()) + "\n")
        state = {
            "pid": os.getpid(),
            "server": cluster.server,
            "kubeconfig": str(cluster.kubeconfig),
        }
        (directory / "state.json.tmp").write_text(json.dumps(state) + "\n")
        (directory / "state.json.tmp").replace(directory / "state.json")
        print(f"ready: {cluster.server}", flush=True)
        while not stop.wait(0.5) and cluster.alive():
            pass
        if not stop.is_set():
            print(cluster._report("a process exited"), flush=True)
            return 1
        return 0
    except ClusterError as exc:
        print(exc, flush=True)
        return 1
    finally:
        for name in ("state.json", "env"):
            (directory / name).unlink(missing_ok=True)
        cluster.stop()


if __name__ == "__main__":
    sys.exit(_serve(Path(sys.argv[1]), Path(sys.argv[2])))
