"""What `make k8s-lab` shows after the deploy, and what it asserts.

It prints what KubeRay made (RayService, RayCluster, the Ray pods' commands, probes, env names
and ports), every Service with its selector and ready endpoints (from the EndpointSlices), what
the disruption controller made of each PodDisruptionBudget, and the events. It fails if a
Service with a selector has no ready endpoint.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from lab_core import BIN, KUBECONFIG, NAMESPACE, RUN, Lab, in_netns, lab_env, section


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def wait_for_ray_pods(lab: Lab) -> None:
    def ready() -> bool:
        pods = lab.get_json("pods", "-n", NAMESPACE)["items"]
        ray = [p for p in pods if "ray.io/node-type" in p["metadata"].get("labels", {})]
        types = {p["metadata"]["labels"]["ray.io/node-type"] for p in ray}
        return {"head", "worker"} <= types and all(pod_ready(p) for p in pods)

    lab.wait_for(
        "the RayCluster's head and worker pods, and every pod, to be Ready",
        ready,
        timeout_s=120,
        every_s=2,
    )
    time.sleep(3)  # EndpointSlices follow readiness within a moment


def show_probe(probe: dict[str, Any] | None) -> str:
    if not probe:
        return "-"
    if "httpGet" in probe:
        how = f"http :{probe['httpGet'].get('port')}{probe['httpGet'].get('path', '')}"
    elif "exec" in probe:
        how = "exec " + " ".join(probe["exec"]["command"])[-160:]
    elif "tcpSocket" in probe:
        how = f"tcp :{probe['tcpSocket']['port']}"
    else:
        how = json.dumps(probe)
    return f"{how} (period {probe.get('periodSeconds', 10)}s)"


def show_pod(pod: dict[str, Any]) -> None:
    meta = pod["metadata"]
    print(
        f"pod {meta['name']}  node={pod['spec'].get('nodeName')}  "
        f"phase={pod['status'].get('phase')}  ready={pod_ready(pod)}  "
        f"ip={pod['status'].get('podIP')}"
    )
    print(f"  labels: {', '.join(f'{k}={v}' for k, v in sorted(meta.get('labels', {}).items()))}")
    for kind in ("initContainers", "containers"):
        for c in pod["spec"].get(kind, []):
            print(f"  {kind[:-1]} {c['name']}  image={c['image']}")
            command = " ".join([*c.get("command", []), *c.get("args", [])])
            if command:
                print(f"    command: {command[:600]}")
            ports = ", ".join(
                f"{p.get('name', '?')}={p['containerPort']}" for p in c.get("ports", [])
            )
            if ports:
                print(f"    ports: {ports}")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(probe):
                    print(f"    {probe}: {show_probe(c[probe])}")
            names = [e["name"] for e in c.get("env", [])]
            if names:
                print(f"    env: {', '.join(names)}")
            if c.get("lifecycle", {}).get("preStop"):
                print("    preStop: " + json.dumps(c["lifecycle"]["preStop"])[:200])


def endpoints_by_service(lab: Lab) -> dict[str, list[tuple[str, bool]]]:
    return endpoints_from_slices(lab.get_json("endpointslices", "-n", NAMESPACE)["items"])


def endpoints_from_slices(slices: list[dict[str, Any]]) -> dict[str, list[tuple[str, bool]]]:
    """Service name -> (the endpoint's pod name, or its addresses; whether it is ready)."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for s in slices:
        svc = s["metadata"].get("labels", {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        for ep in s.get("endpoints") or []:
            target = ep.get("targetRef", {}).get("name", ",".join(ep.get("addresses", [])))
            out.setdefault(svc, []).append((target, bool(ep.get("conditions", {}).get("ready"))))
    return out


def service_table(
    services: list[dict[str, Any]], endpoints: dict[str, list[tuple[str, bool]]]
) -> tuple[list[tuple[str, str, str, str, str]], list[str]]:
    """The Services' table (a header, then a row each) and a failure per Service that has a
    selector but no ready endpoint."""
    failures: list[str] = []
    rows = [("SERVICE", "TYPE", "MADE BY", "SELECTOR", "READY ENDPOINTS")]
    for svc in services:
        name = svc["metadata"]["name"]
        selector = svc["spec"].get("selector") or {}
        eps = endpoints.get(name, [])
        ready = [t for t, ok in eps if ok]
        made_by = "kuberay" if kuberay_made(svc) else "deploy"
        cluster_ip = svc["spec"].get("clusterIP")
        kind = "headless" if cluster_ip == "None" else svc["spec"]["type"]
        sel = ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "(none)"
        rows.append((name, kind, made_by, sel, ", ".join(ready) or "NONE"))
        if selector and not ready:
            failures.append(f"Service {name} selects {sel} but has no ready endpoint")
    return rows, failures


def kuberay_made(obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    owners = {o["kind"] for o in meta.get("ownerReferences", [])}
    return (
        bool(owners & {"RayCluster", "RayService"})
        or meta.get("labels", {}).get("app.kubernetes.io/created-by") == "kuberay-operator"
    )


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def show_disruption_budgets(lab: Lab) -> None:
    """What the disruption controller made of each PodDisruptionBudget (not asserted: a warning)."""
    section("PodDisruptionBudgets: what a node drain may evict")

    def synced() -> bool:
        items = lab.get_json("pdb", "-n", NAMESPACE)["items"]
        return all(
            p.get("status", {}).get("observedGeneration") == p["metadata"]["generation"]
            and p["status"].get("conditions")
            for p in items
        )

    # The controller retries a failed sync only on a change: one poke after the first sync.
    lab.wait_for("the disruption controller to sync the PDBs", synced, timeout_s=60)
    lab.kubectl("annotate", "pdb", "--all", "-n", NAMESPACE, "k8s-lab/resync=1", "--overwrite")
    time.sleep(3)
    for pdb in lab.get_json("pdb", "-n", NAMESPACE)["items"]:
        spec, status = pdb["spec"], pdb.get("status", {})
        budget = (
            f"maxUnavailable={spec['maxUnavailable']}"
            if "maxUnavailable" in spec
            else f"minAvailable={spec.get('minAvailable')}"
        )
        cond = next(
            (c for c in status.get("conditions", []) if c["type"] == "DisruptionAllowed"), {}
        )
        print(
            f"{pdb['metadata']['name']:18} {budget:18} expectedPods={status.get('expectedPods')} "
            f"currentHealthy={status.get('currentHealthy')} "
            f"disruptionsAllowed={status.get('disruptionsAllowed')} "
            f"({cond.get('reason')}: {cond.get('message', '')})"
        )
        if cond.get("reason") == "SyncFailed":
            print(
                f"  WARNING: {pdb['metadata']['name']} cannot be computed, so the eviction API "
                "refuses every pod it covers: a node drain waits on them forever"
            )
    try_evicting_a_worker(lab)


def try_evicting_a_worker(lab: Lab) -> None:
    """Ask the eviction API (dry run) for one Ray worker, as `kubectl drain` would."""
    workers = lab.get_json("pods", "-n", NAMESPACE, "-l", "ray.io/node-type=worker")["items"]
    if not workers:
        return
    name = workers[0]["metadata"]["name"]
    body = RUN / "eviction.json"
    body.write_text(
        json.dumps(
            {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "deleteOptions": {"dryRun": ["All"]},
            }
        )
    )
    cmd = in_netns(
        [
            str(BIN / "kubectl"),
            f"--kubeconfig={KUBECONFIG}",
            "create",
            "--raw",
            f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/eviction",
            "-f",
            str(body),
        ]
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, env=lab_env(), check=False)
    answer = (proc.stdout + proc.stderr).strip().splitlines()
    verdict = "allowed" if proc.returncode == 0 else "REFUSED"
    print(
        f"eviction of {name} (dry run, as a drain asks): {verdict}: {answer[-1] if answer else ''}"
    )


def show_and_check(lab: Lab) -> list[str]:
    section("RayService and RayCluster (made by KubeRay v1.6.2 from our RayService)")
    print(lab.kubectl("get", "rayservice,raycluster", "-n", NAMESPACE, "-o", "wide"), end="")
    for rc in lab.get_json("rayclusters", "-n", NAMESPACE)["items"]:
        status = rc.get("status", {})
        print(
            f"raycluster {rc['metadata']['name']}: state={status.get('state')} "
            f"desiredWorkers={status.get('desiredWorkerReplicas')} "
            f"readyWorkers={status.get('readyWorkerReplicas')} "
            f"head={status.get('head', {}).get('serviceName')}"
        )
    rs = lab.get_json("rayservices", "-n", NAMESPACE)["items"]
    for r in rs:
        conds = [
            f"{c['type']}={c['status']}({c.get('reason')})"
            for c in r.get("status", {}).get("conditions", [])
        ]
        print(f"rayservice {r['metadata']['name']}: {', '.join(conds) or 'no conditions yet'}")

    pods = lab.get_json("pods", "-n", NAMESPACE)["items"]
    section("Ray pods (head, worker): ray start, probes, env names, ports")
    for pod in pods:
        if "ray.io/node-type" in pod["metadata"].get("labels", {}):
            show_pod(pod)
    section("all pods")
    print(lab.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide"), end="")

    section("Services: selector and endpoints (EndpointSlices)")
    services = lab.get_json("services", "-n", NAMESPACE)["items"]
    rows, failures = service_table(services, endpoints_by_service(lab))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])

    section("KubeRay's Services: selector beside the labels of the pods it selects")
    for svc in services:
        if not kuberay_made(svc):
            continue
        selector = svc["spec"].get("selector") or {}
        print(f"{svc['metadata']['name']}")
        print(f"  selector: {', '.join(f'{k}={v}' for k, v in sorted(selector.items()))}")
        matched = [
            p for p in pods if selector and selects(selector, p["metadata"].get("labels", {}))
        ]
        for pod in matched:
            labels = pod["metadata"].get("labels", {})
            shown = ", ".join(f"{k}={labels[k]}" for k in sorted(selector))
            print(f"  pod {pod['metadata']['name']}: {shown}  (ready={pod_ready(pod)})")
        if not matched:
            print("  selects NO pod")

    show_disruption_budgets(lab)

    section("events (last 25)")
    events = lab.kubectl("get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp")
    print("\n".join(events.splitlines()[:1] + events.splitlines()[-25:]))
    return failures
