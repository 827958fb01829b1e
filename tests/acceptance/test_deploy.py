"""deploy/kubernetes: every manifest parses, the pieces agree with each other and with the
local policy, and the KEDA trigger's SQL counts exactly what ``runnable_backlog`` counts, on
a real PostgreSQL schema holding jobs in every state."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from queuelab import Queue
from queuelab.models import AttemptOutcome
from queuelab.policy import Complete, Errored, Retry
from queuelab.runtime.autoscale import ScalePolicy
from queuelab.store.reports import runnable_backlog
from queuelab.testing import internals

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
POLICY = ScalePolicy()


def manifests() -> dict[str, dict[str, Any]]:
    """{kind: document} over every YAML file in deploy/kubernetes (each kind once)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), f"{path.name}: a document that is not a mapping"
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{path.name}: {doc.get('kind')}"
            assert doc["kind"] not in found, f"{path.name}: a second {doc['kind']}"
            found[doc["kind"]] = doc
    return found


def trigger_query() -> str:
    (trigger,) = manifests()["ScaledObject"]["spec"]["triggers"]
    return str(trigger["metadata"]["query"])


def test_every_manifest_parses_and_names_the_same_deployment_and_secret() -> None:
    found = manifests()
    assert set(found) == {"Secret", "Deployment", "ScaledObject", "TriggerAuthentication", "HorizontalPodAutoscaler"}
    deployment = found["Deployment"]["metadata"]["name"]
    assert found["ScaledObject"]["spec"]["scaleTargetRef"]["name"] == deployment
    assert found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment
    secret = found["Secret"]["metadata"]["name"]
    assert found["TriggerAuthentication"]["spec"]["secretTargetRef"][0]["name"] == secret
    (trigger,) = found["ScaledObject"]["spec"]["triggers"]
    assert (trigger["type"], trigger["authenticationRef"]["name"]) == ("postgresql", "queuelab-database")
    assert found["Secret"]["stringData"]["url"].startswith("postgresql://")  # KEDA parses it too


def test_the_worker_runs_queuelab_and_gets_sigkilled_only_after_its_grace() -> None:
    spec = manifests()["Deployment"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"][:4] == ["python", "-m", "queuelab", "worker"]
    env = {e["name"]: e for e in container["env"]}
    assert env["QUEUELAB_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "queuelab-database", "key": "url"}
    grace = float(env["QUEUELAB_SHUTDOWN_GRACE_SECONDS"]["value"])
    assert spec["terminationGracePeriodSeconds"] >= grace + 5  # time to release the job and exit


def test_both_autoscalers_use_the_policy_defaults() -> None:
    found = manifests()
    keda, hpa = found["ScaledObject"]["spec"], found["HorizontalPodAutoscaler"]["spec"]
    (trigger,) = keda["triggers"]
    assert float(trigger["metadata"]["targetQueryValue"]) == POLICY.jobs_per_new_worker == POLICY.scale_up_backlog
    assert (keda["minReplicaCount"], keda["maxReplicaCount"]) == (POLICY.min_workers, POLICY.max_workers)
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (POLICY.min_workers, POLICY.max_workers)
    (metric,) = hpa["metrics"]
    assert metric["external"]["metric"]["name"] == "queuelab_runnable_backlog"  # what /metrics exports
    assert float(metric["external"]["target"]["averageValue"]) == POLICY.jobs_per_new_worker
    for behavior in (keda["advanced"]["horizontalPodAutoscalerConfig"]["behavior"], hpa["behavior"]):
        (up,) = behavior["scaleUp"]["policies"]
        (down,) = behavior["scaleDown"]["policies"]
        assert (up["value"], up["periodSeconds"]) == (POLICY.max_step_up, POLICY.cooldown_seconds)
        assert (down["value"], down["periodSeconds"]) == (1, POLICY.cooldown_seconds)
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == POLICY.idle_seconds
    # The HPA scales down on the backlog alone, to the minimum: the local policy with no headroom.
    assert POLICY.headroom == 0


def test_the_trigger_query_uses_unqualified_table_names() -> None:
    query = trigger_query()
    assert "FROM queuelab_jobs" in query
    assert not re.search(r"\w\.queuelab_", query)  # no schema: the role's search_path finds the tables


def test_the_hpa_metric_is_one_the_api_exports(sqlite_url: str) -> None:
    from fastapi.testclient import TestClient

    from queuelab.api import create_app

    (metric,) = manifests()["HorizontalPodAutoscaler"]["spec"]["metrics"]
    name = metric["external"]["metric"]["name"]
    q = Queue(sqlite_url)
    q.submit("simulate")
    with TestClient(create_app(q)) as client:
        assert f'{name}{{queue="default"}} 1.0' in client.get("/metrics").text
        worker = q.foreground_worker()
        worker.step()
        worker.flush()
        # Nothing left: the series reads 0 (were it gone, the HPA would keep its last value, 1).
        assert f'{name}{{queue="default"}} 0.0' in client.get("/metrics").text
    q.close()


class Backlog:
    """Jobs in every state on one PostgreSQL schema, and the two ways of counting them."""

    def __init__(self, q: Queue) -> None:
        self.q = q

    def submit(self, user: str, n: int = 1, **options: Any) -> None:
        for _ in range(n):
            self.q.submit("simulate", user_id=user, **options)

    def run(self, queue: str, n: int) -> list[Any]:
        """Claim ``n`` jobs of ``queue``: they are RUNNING now."""
        leases = internals(self.q).leases.claim("test-worker", [queue], n, time.time())
        assert len(leases) == n
        return leases

    def by_sql(self) -> int:
        with internals(self.q).db.read() as conn:
            return int(conn.execute(sa.text(trigger_query())).scalar_one())

    def by_python(self) -> int:
        return sum(runnable_backlog(internals(self.q).db, time.time()).values())


@pytest.mark.postgres
def test_the_keda_query_counts_what_the_policy_counts(postgres_url: str) -> None:
    q = Queue(postgres_url)
    jobs = Backlog(q)
    now = time.time()
    jobs.submit("due", 3)  # runnable: 3
    jobs.submit("due", 2, delay=3600)  # scheduled for later
    jobs.submit("retry", 2, queue="retries")
    first, second = jobs.run("retries", 2)
    error = Errored(AttemptOutcome.FAILED, "Boom", "boom")
    internals(q).leases.ack(first, Retry(now + 600, error), "test-worker", now)  # backing off
    internals(q).leases.ack(second, Complete(None), "test-worker", now)  # done
    q.set_limits("capped", max_running=1)
    jobs.submit("capped", 3, queue="capped")
    jobs.run("capped", 1)  # capped is at its quota: its 2 pending jobs cannot start
    q.set_limits("*", max_running=2)
    jobs.submit("defaulted", 3, queue="defaulted")
    jobs.run("defaulted", 2)  # the '*' quota of 2 holds back the third
    q.set_limits("weighted", weight=2)  # a row of its own without max_running: '*' applies
    jobs.submit("weighted", 3, queue="weighted")
    jobs.run("weighted", 1)  # 1 of 2 running: its other 2 are runnable
    q.set_limits("unlimited", max_running=0)  # 0 switches the '*' quota off for this user
    jobs.submit("unlimited", 4, queue="unlimited")
    jobs.run("unlimited", 3)  # its last one is runnable
    jobs.submit("paused-user", 2, queue="reports")
    q.pause("reports")
    cancelled = q.submit("simulate", user_id="due", delay=60)
    q.cancel(cancelled.id)

    assert jobs.by_python() == 3 + 2 + 1
    assert jobs.by_sql() == jobs.by_python()
    q.resume("reports")
    assert jobs.by_sql() == jobs.by_python() == 8
    q.set_limits("*", max_running=None)  # no default quota: defaulted's third job is free
    assert jobs.by_sql() == jobs.by_python() == 9
    q.set_limits("capped", max_running=None)
    assert jobs.by_sql() == jobs.by_python() == 11
    q.close()


@pytest.mark.postgres
def test_the_keda_query_on_an_empty_schema_is_zero(postgres_url: str) -> None:
    q = Queue(postgres_url)
    q.stats()  # creates the schema
    assert Backlog(q).by_sql() == 0
    q.close()
