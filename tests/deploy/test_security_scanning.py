"""CI audits the locked dependencies and scans the image before pushing it (issue 13.12)."""

import re

from tests.deploy.test_deployment_files import ROOT, Doc, workflow


def _steps(job: str) -> list[Doc]:
    steps: list[Doc] = workflow()["jobs"][job]["steps"]
    return steps


def _make_target(name: str) -> str:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{name}:.*\n((?:\t.*\n?)+)", makefile, re.MULTILINE)
    assert match, f"no make target {name}"
    return match.group(1)


def test_make_audit_checks_the_frozen_lock_and_fails_when_it_checked_nothing():
    recipe = _make_target("audit").replace("\\\n", " ")
    assert "export --frozen" in recipe
    assert "--no-emit-project" in recipe, "the project itself is not on PyPI"
    assert "pip-audit==$(PIP_AUDIT_VERSION)" in recipe
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PIP_AUDIT_VERSION := \d+\.\d+\.\d+$", makefile, re.MULTILINE)
    assert "--strict" in recipe, "a package that could not be looked up fails the audit"
    assert "--disable-pip" in recipe, "audit the lock's exact pins, not a fresh resolution"


def test_ci_runs_the_audit_and_the_image_waits_for_it():
    runs = [step.get("run", "") for step in _steps("audit")]
    assert any(run.startswith("make audit") for run in runs)
    assert "audit" in workflow()["jobs"]["image"]["needs"]


def test_the_image_is_scanned_before_it_is_pushed_and_high_findings_fail():
    steps = _steps("image")
    names = [step.get("uses", "").split("@")[0] for step in steps]
    scan_at = names.index("aquasecurity/trivy-action")
    builds = [i for i, name in enumerate(names) if name == "docker/build-push-action"]
    local, pushed = builds
    assert local < scan_at < pushed
    built = steps[local]["with"]
    assert built["load"] is True
    assert built["push"] is False
    scan = steps[scan_at]["with"]
    assert scan["image-ref"] == built["tags"]
    assert scan["exit-code"] == "1"
    assert set(scan["severity"].split(",")) == {"HIGH", "CRITICAL"}
    assert set(scan["vuln-type"].split(",")) == {"os", "library"}
