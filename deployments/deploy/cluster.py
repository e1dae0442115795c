"""The cluster, behind a small interface (the tests use a fake), and how to connect to one."""

from __future__ import annotations

import os
from typing import Any, Protocol

from deployments.deploy.objects import DeployError, describe

FIELD_MANAGER = "votes-deploy"

NO_CLUSTER = (
    "no Kubernetes cluster configured ({reason}).\n"
    "  Point the deploy CLI at a cluster, one of:\n"
    "    - pass --kubeconfig PATH (and --context NAME to pick a context),\n"
    "    - set KUBECONFIG=PATH, or put the config in ~/.kube/config,\n"
    "    - for a local test cluster: `kind create cluster` or `minikube start`"
    " (both write ~/.kube/config).\n"
    "  Check it with `kubectl cluster-info`. --dry-run needs no cluster."
)


class ClusterAPI(Protocol):
    def has_kind(self, api_version: str, kind: str) -> bool: ...
    def apply(self, doc: dict[str, Any]) -> None: ...
    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None: ...
    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool: ...


class Cluster:
    """The kubernetes client's DynamicClient: one code path for built-in kinds and CRs."""

    def __init__(self, dynamic: Any) -> None:
        from kubernetes.dynamic import exceptions

        self.dynamic = dynamic
        self.errors = exceptions

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def has_kind(self, api_version: str, kind: str) -> bool:
        try:
            self._resource(api_version, kind)
        except self.errors.ResourceNotFoundError:
            return False
        return True

    def apply(self, doc: dict[str, Any]) -> None:
        resource = self._resource(doc["apiVersion"], doc["kind"])
        try:
            self.dynamic.server_side_apply(
                resource,
                body=doc,
                namespace=doc["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        except self.errors.DynamicApiError as exc:
            raise DeployError(f"applying {describe(doc)} failed: {exc.summary()}") from None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        resource = self._resource(api_version, kind)
        try:
            return resource.get(name=name, namespace=namespace).to_dict()
        except self.errors.NotFoundError:
            return None

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        resource = self._resource(api_version, kind)
        try:
            resource.delete(name=name, namespace=namespace)
        except self.errors.NotFoundError:
            return False
        return True


def connect(kubeconfig: str | None, context: str | None) -> Cluster:
    """A Cluster from --kubeconfig, KUBECONFIG, ~/.kube/config or, inside a pod, the pod's
    account."""
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.dynamic import DynamicClient
    from urllib3.exceptions import HTTPError

    try:
        try:
            api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
        except ConfigException:
            if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise
            k8s_config.load_incluster_config()
            api = k8s_client.ApiClient()
    except (ConfigException, OSError) as exc:
        raise DeployError(
            NO_CLUSTER.format(reason=str(exc).strip() or type(exc).__name__)
        ) from None
    try:
        return Cluster(DynamicClient(api))  # reads the API server's discovery documents
    except (ApiException, HTTPError, OSError) as exc:  # unreachable, 401/403 from discovery
        host = api.configuration.host
        raise DeployError(
            f"cannot use the Kubernetes API at {host}: {type(exc).__name__}: {exc}\n"
            "  Is the cluster running and the kubeconfig context the right one? "
            "Try `kubectl cluster-info`."
        ) from None


def live_object(cluster: ClusterAPI, doc: dict[str, Any]) -> dict | None:
    """The object as the cluster has it; None when absent or when its kind is not served."""
    if not cluster.has_kind(doc["apiVersion"], doc["kind"]):
        return None
    metadata = doc["metadata"]
    return cluster.get(doc["apiVersion"], doc["kind"], metadata["name"], metadata.get("namespace"))
