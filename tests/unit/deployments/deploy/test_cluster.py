"""deployments.deploy.cluster: server-side apply through an autospec'd DynamicClient."""

from __future__ import annotations

import pytest

from deployments.deploy.cluster import FIELD_MANAGER, Cluster
from deployments.deploy.objects import DeployError
from devkit.k8s_validation import main_docs, one


def test_cluster_server_side_applies_through_the_dynamic_client() -> None:
    """The real wrapper, against an autospec'd DynamicClient (calls are signature-checked)."""
    from unittest import mock

    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic import DynamicClient, exceptions

    dynamic = mock.create_autospec(DynamicClient, instance=True)
    dynamic.resources = mock.Mock()
    cluster = Cluster(dynamic)
    doc = one(main_docs(), "RayService")
    cluster.apply(doc)
    dynamic.resources.get.assert_called_with(api_version="ray.io/v1", kind="RayService")
    dynamic.server_side_apply.assert_called_once_with(
        dynamic.resources.get.return_value,
        body=doc,
        namespace="votes",
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
    )
    refused = ApiException(status=422, reason="Unprocessable Entity")
    refused.body, refused.headers = (
        '{"message": "spec.foo: Invalid value"}',
        {"Content-Type": "application/json"},
    )
    dynamic.server_side_apply.side_effect = exceptions.UnprocessibleEntityError(refused)
    with pytest.raises(DeployError, match=r"RayService/votes \(votes\) failed: spec.foo"):
        cluster.apply(doc)
    dynamic.resources.get.side_effect = exceptions.ResourceNotFoundError("no such kind")
    assert cluster.has_kind("ray.io/v1", "RayService") is False
