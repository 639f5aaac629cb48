"""The NetworkPolicies, checked offline by evaluating them (issue 13.12).

`allowed` applies Kubernetes' NetworkPolicy rules to one connection: a pod selected by a
policy of that direction admits only what one of its rules lets through. Peers are given as
(namespace, pod labels); the other side's ports are resolved against the pods' named ports.
"""

import urllib.parse

import pytest

from order_generation.config import GLOBECO_URL_FIELDS
from tests.deploy.test_deployment_files import (
    APP,
    NAMESPACE,
    Doc,
    app_container,
    configmap,
    container_port,
    k8s_docs,
    one,
)

Labels = dict[str, str]
Peer = tuple[str, Labels]


def _pod_labels(kind: str, name: str | None = None) -> Labels:
    labels: Labels = one(kind, name)["spec"]["template"]["metadata"]["labels"]
    return labels


def _container(kind: str, name: str | None = None) -> Doc:
    containers: list[Doc] = one(kind, name)["spec"]["template"]["spec"]["containers"]
    return containers[0]


API: Peer = (NAMESPACE, _pod_labels("Deployment", APP))
MONGO: Peer = (NAMESPACE, _pod_labels("StatefulSet"))
PORTAL: Peer = ("globeco-portal", {"app.kubernetes.io/name": "globeco-portal"})
SCRAPER: Peer = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
DNS: Peer = ("kube-system", {"k8s-app": "kube-dns"})


def _named_port(target: Peer, name: str) -> int:
    """A port name resolved against the target pod's container, as Kubernetes does."""
    containers = {"api": app_container(), "database": _container("StatefulSet")}
    component = target[1].get("app.kubernetes.io/component", "")
    assert target[0] == NAMESPACE, f"named port {name!r} on a pod outside the manifests"
    assert component in containers, f"named port {name!r} on a pod outside the manifests"
    return container_port(containers[component], name)


def _matches(selector: Doc, labels: Labels) -> bool:
    expressions = selector.get("matchExpressions", [])
    assert all(e["operator"] in ("In", "NotIn", "Exists", "DoesNotExist") for e in expressions)
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and all(
        (e["key"] in labels and labels[e["key"]] in e.get("values", []))
        if e["operator"] == "In"
        else _other_operator(e, labels)
        for e in expressions
    )


def _other_operator(expression: Doc, labels: Labels) -> bool:
    present = expression["key"] in labels
    if expression["operator"] == "Exists":
        return present
    if expression["operator"] == "DoesNotExist":
        return not present
    return labels.get(expression["key"]) not in expression.get("values", [])


def _peer_matches(rule_peer: Doc, policy_namespace: str, peer: Peer) -> bool:
    namespace, labels = peer
    assert "ipBlock" not in rule_peer, "peers are chosen by label, never by address"
    if "namespaceSelector" in rule_peer:
        in_namespace = _matches(
            rule_peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}
        )
    else:
        in_namespace = namespace == policy_namespace
    return in_namespace and _matches(rule_peer.get("podSelector", {}), labels)


def _port_matches(rule_port: Doc, port: int, protocol: str, target: Peer) -> bool:
    given: int | str = rule_port["port"]
    wanted = _named_port(target, given) if isinstance(given, str) else given
    same_protocol: bool = rule_port.get("protocol", "TCP") == protocol
    return same_protocol and wanted == port


def _admits(
    policy: Doc, direction: str, peer: Peer, port: int, protocol: str, target: Peer
) -> bool:
    key = "from" if direction == "ingress" else "to"
    for rule in policy["spec"].get(direction, []):
        assert rule.get(key), "a rule without peers would admit every pod in the cluster"
        assert rule.get("ports"), "a rule without ports would admit every port"
        peers_ok = any(_peer_matches(p, policy["metadata"]["namespace"], peer) for p in rule[key])
        ports_ok = any(_port_matches(p, port, protocol, target) for p in rule["ports"])
        if peers_ok and ports_ok:
            return True
    return False


def _policies_of(pod: Peer, direction: str) -> list[Doc]:
    namespace, labels = pod
    return [
        d
        for d in k8s_docs()
        if d["kind"] == "NetworkPolicy"
        and d["metadata"]["namespace"] == namespace
        and direction.capitalize() in d["spec"]["policyTypes"]
        and _matches(d["spec"]["podSelector"], labels)
    ]


def allowed(source: Peer, target: Peer, port: int, protocol: str = "TCP") -> bool:
    """Whether both ends' policies let `source` open a connection to `target`'s port."""
    out_policies = _policies_of(source, "egress")
    in_policies = _policies_of(target, "ingress")
    egress_ok = not out_policies or any(
        _admits(p, "egress", target, port, protocol, target) for p in out_policies
    )
    ingress_ok = not in_policies or any(
        _admits(p, "ingress", source, port, protocol, target) for p in in_policies
    )
    return egress_ok and ingress_ok


def _globeco_services() -> list[tuple[Peer, int]]:
    """Each GlobeCo service as a pod labelled with its Service name, and its port."""
    found = []
    for field in GLOBECO_URL_FIELDS:
        url = urllib.parse.urlsplit(configmap()[field.upper()])
        assert url.hostname is not None
        assert url.port is not None
        found.append(((NAMESPACE, {"app.kubernetes.io/name": url.hostname}), url.port))
    return found


HTTP_PORT = container_port(app_container(), "http")
MONGO_PORT = urllib.parse.urlsplit(configmap()["MONGODB_URL"]).port or 27017


def test_both_sides_of_the_service_are_restricted() -> None:
    [policy] = _policies_of(API, "ingress")
    assert policy == _policies_of(API, "egress")[0]
    assert _policies_of(MONGO, "ingress")
    assert _policies_of(MONGO, "egress")


@pytest.mark.parametrize("caller", [PORTAL, SCRAPER], ids=["portal", "scraper"])
def test_the_portal_and_the_scraper_reach_the_http_port(caller: Peer) -> None:
    assert allowed(caller, API, HTTP_PORT)
    assert not allowed(caller, API, HTTP_PORT + 1)


@pytest.mark.parametrize(
    "caller",
    [
        (NAMESPACE, {"app.kubernetes.io/name": "globeco-security-service"}),
        ("default", {"app": "anything"}),
        ("monitoring", {"app.kubernetes.io/name": "grafana"}),
        ("globeco-portal-staging", PORTAL[1]),
        ("kube-system", SCRAPER[1]),
    ],
    ids=[
        "suite-pod",
        "default-namespace",
        "other-monitoring-pod",
        "lookalike-ns",
        "scraper-elsewhere",
    ],
)
def test_nobody_else_reaches_the_service(caller: Peer) -> None:
    assert not allowed(caller, API, HTTP_PORT)


def test_the_service_reaches_its_mongodb_and_nobody_else_does() -> None:
    assert allowed(API, MONGO, MONGO_PORT)
    assert not allowed(PORTAL, MONGO, MONGO_PORT)
    assert not allowed((NAMESPACE, {"app": "other"}), MONGO, MONGO_PORT)
    assert not allowed(MONGO, (NAMESPACE, {"app": "other"}), 443)


@pytest.mark.parametrize("index", range(len(GLOBECO_URL_FIELDS)), ids=list(GLOBECO_URL_FIELDS))
def test_the_service_reaches_each_globeco_service_on_its_port(index: int) -> None:
    service, port = _globeco_services()[index]
    assert allowed(API, service, port)
    assert not allowed(API, service, port + 1)


def test_the_service_resolves_names_through_cluster_dns() -> None:
    assert allowed(API, DNS, 53, "UDP")
    assert allowed(API, DNS, 53, "TCP")
    assert not allowed(API, ("default", DNS[1]), 53, "UDP")


@pytest.mark.parametrize(
    ("target", "port"),
    [
        (("default", {"app": "web"}), 443),
        (PORTAL, 80),
        (SCRAPER, 9090),
        (DNS, 443),
        ((NAMESPACE, {"app.kubernetes.io/name": "globeco-order-service"}), 8081),
    ],
    ids=["internet-like", "portal", "scraper", "dns-other-port", "other-suite-service"],
)
def test_the_service_reaches_nothing_else(target: Peer, port: int) -> None:
    assert not allowed(API, target, port)


def test_the_evaluator_admits_everything_without_policies() -> None:
    # The check above could pass with an evaluator that refuses everything; this one cannot.
    assert allowed(("elsewhere", {"app": "x"}), ("elsewhere", {"app": "y"}), 1234)
