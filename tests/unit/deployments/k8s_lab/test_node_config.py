"""The real node's configuration and images (deployments/k8s-lab/node_config.py, node_images.py).

Pure logic, no services: the files make sense together (the kubelet's runtime socket is the one
containerd listens on, the cluster DNS address is the one CoreDNS binds), and the OCI archives are
valid image layouts whose digests match their blobs.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import tarfile
import tomllib
from pathlib import Path

import node_config as nc
import node_images as ni
import pytest

PATHS = nc.NodePaths(Path("/lab/run/node"))


def test_containerd_config_is_toml_with_our_dirs_runc_cgroupfs_and_sandbox() -> None:
    config = tomllib.loads(nc.containerd_config(PATHS))
    assert config["version"] == 3
    assert config["disabled_plugins"] == ["io.containerd.internal.v1.opt"]  # else /opt/containerd
    assert config["root"] == str(PATHS.containerd_root)
    assert config["state"] == str(PATHS.containerd_state)
    assert config["grpc"]["address"] == str(PATHS.containerd_socket)
    plugins = config["plugins"]
    assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == nc.SANDBOX_IMAGE
    runtime = plugins["io.containerd.cri.v1.runtime"]
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runtime["containerd"]["default_runtime_name"] == "runc"
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {"BinaryName": str(nc.RUNC), "SystemdCgroup": False}
    assert runtime["cni"]["conf_dir"] == str(PATHS.cni_conf_dir)
    assert runtime["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE on this machine
    assert runc["base_runtime_spec"] == str(PATHS.base_runtime_spec)


def test_base_runtime_spec_gives_every_container_the_open_files_serve_needs() -> None:
    default = {  # the shape of `ctr oci spec` (containerd 2.4.2)
        "ociVersion": "1.2.1",
        "process": {
            "args": ["sh"],
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                {"type": "RLIMIT_NPROC", "hard": 99, "soft": 99},
            ],
        },
        "linux": {"namespaces": [{"type": "pid"}]},
    }
    spec = nc.base_runtime_spec(default)
    limits = {r["type"]: (r["soft"], r["hard"]) for r in spec["process"]["rlimits"]}
    assert limits == {"RLIMIT_NOFILE": (20000, 20000), "RLIMIT_NPROC": (99, 99)}
    assert 10_300 <= nc.POD_OPEN_FILES <= 20_000  # HAProxy's need; this machine's hard limit
    assert spec["linux"] == default["linux"] and spec["process"]["args"] == ["sh"]
    assert default["process"]["rlimits"][0]["soft"] == 1024  # the caller's spec is untouched


def test_every_path_of_the_node_stays_below_its_folder() -> None:
    paths = [getattr(PATHS, name) for name in dir(nc.NodePaths) if not name.startswith("_")]
    paths = [p for p in paths if isinstance(p, Path) and p != PATHS.root]
    assert paths and all(PATHS.root in p.parents for p in paths)


def test_kubelet_talks_to_our_containerd_with_cgroupfs_on_cgroup_v1() -> None:
    config = nc.kubelet_config(PATHS)
    assert config["kind"] == "KubeletConfiguration"
    assert config["failCgroupV1"] is False and config["cgroupDriver"] == "cgroupfs"
    assert config["containerRuntimeEndpoint"] == f"unix://{PATHS.containerd_socket}"
    assert config["resolvConf"] == str(PATHS.resolv_conf)
    assert config["clusterDNS"] == [nc.CLUSTER_DNS_IP]
    assert config["failSwapOn"] is False
    assert config["imageGCHighThresholdPercent"] == 100  # images cannot be pulled back


def test_cluster_dns_is_in_the_service_range_low_band_and_coredns_binds_it() -> None:
    service_range = ipaddress.ip_network("10.96.0.0/16")  # lab.py's --service-cluster-ip-range
    dns = ipaddress.ip_address(nc.CLUSTER_DNS_IP)
    assert dns in service_range
    # The API server hands out the low band (here the first 256 addresses) only when asked.
    assert int(dns) - int(service_range.network_address) < 256
    corefile = nc.corefile(Path("/lab/kubeconfig"))
    assert f"bind {nc.CLUSTER_DNS_IP}\n" in corefile
    assert f"kubernetes {nc.CLUSTER_DOMAIN} " in corefile
    assert "kubeconfig /lab/kubeconfig" in corefile


def test_pod_network_and_addresses_do_not_overlap() -> None:
    pods = ipaddress.ip_network(nc.POD_SUBNET)
    assert pods.subnet_of(ipaddress.ip_network(nc.CLUSTER_CIDR))  # type: ignore[arg-type]
    assert ipaddress.ip_address(nc.POD_GATEWAY) in pods
    for address in (nc.NODE_IP, nc.CLUSTER_DNS_IP):
        assert ipaddress.ip_address(address) not in ipaddress.ip_network(nc.CLUSTER_CIDR)
    bridge = nc.cni_conflist(PATHS)["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["isGateway"] and bridge["hairpinMode"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": nc.POD_SUBNET, "gateway": nc.POD_GATEWAY}]]
    assert bridge["ipam"]["dataDir"] == str(PATHS.cni_ipam_dir)


def test_kube_proxy_runs_iptables_for_our_node_and_leaves_conntrack_sizing_alone() -> None:
    config = nc.kube_proxy_config(Path("/lab/kubeconfig"))
    assert config["mode"] == "iptables"
    assert config["hostnameOverride"] == nc.NODE_NAME
    assert config["clusterCIDR"] == nc.CLUSTER_CIDR
    assert config["conntrack"]["maxPerCore"] == 0


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def test_oci_layout_is_one_image_whose_digests_match_its_blobs() -> None:
    files = ni.oci_layout(
        "k8s-lab.local/x:1", [ni.Entry("bin/tool", b"\x7fELF", 0o755)], ["/bin/tool"]
    )
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (descriptor,) = json.loads(files["index.json"])["manifests"]
    assert descriptor["annotations"]["org.opencontainers.image.ref.name"] == "1"
    manifest_blob = files[f"blobs/sha256/{descriptor['digest'].split(':')[1]}"]
    assert (
        _digest(manifest_blob) == descriptor["digest"] and len(manifest_blob) == descriptor["size"]
    )
    manifest = json.loads(manifest_blob)
    config_blob = files[f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"]
    layer_blob = files[f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}"]
    config = json.loads(config_blob)
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    assert config["rootfs"]["diff_ids"] == [_digest(layer_blob)]  # uncompressed: digest = diff_id
    with tarfile.open(fileobj=io.BytesIO(layer_blob)) as layer:
        tool = layer.getmember("bin/tool")
        assert tool.mode == 0o755 and tool.uid == 0
        assert layer.getmember("bin").isdir()


def test_the_same_inputs_give_the_same_image() -> None:
    entries = [ni.Entry("a", b"1"), ni.Entry("b/c", link="../a")]
    assert ni.oci_layout("r/x:1", entries, ["/a"]) == ni.oci_layout("r/x:1", entries, ["/a"])


def test_busybox_image_has_its_applets_as_links() -> None:
    entries = {e.path: e for e in ni.busybox_entries(b"binary")}
    assert entries["bin/busybox"].mode == 0o755
    assert all(entries[f"bin/{a}"].link == "busybox" for a in ("sh", "httpd", "nslookup", "wget"))


def test_helper_archives_tolerate_a_missing_index_and_reject_a_bad_one(tmp_path: Path) -> None:
    assert ni.helper_archives(tmp_path) == {}
    (tmp_path / "a.tar").write_bytes(b"")
    (tmp_path / "index.json").write_text(json.dumps({"lab.local/a:1": "a.tar"}))
    assert ni.helper_archives(tmp_path) == {"lab.local/a:1": tmp_path / "a.tar"}
    (tmp_path / "index.json").write_text(json.dumps({"lab.local/b:1": "b.tar"}))
    with pytest.raises(SystemExit, match="do not exist"):
        ni.helper_archives(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps(["a.tar"]))
    with pytest.raises(SystemExit, match="must map"):
        ni.helper_archives(tmp_path)


def test_import_names_every_archive_by_its_ref_and_checks_containerd_lists_it() -> None:
    calls: list[tuple[str, ...]] = []

    def ctr(*args: str) -> str:
        calls.append(args)
        listed = "import-2026-12-07:3.10\nk8s-lab.local/pause:3.10\n"
        return listed if args[:2] == ("images", "ls") else ""

    archives = {"k8s-lab.local/pause:3.10": Path("/x/pause.tar")}
    assert ni.import_images(ctr, archives) == ["k8s-lab.local/pause:3.10"]
    assert ("images", "import", "--base-name", "k8s-lab.local/pause", "/x/pause.tar") in calls
    assert ("images", "rm", "import-2026-12-07:3.10") in calls  # ctr's own names expire
    calls.clear()
    with pytest.raises(SystemExit, match="not listed"):
        ni.import_images(ctr, {"k8s-lab.local/other:1": Path("/x/o.tar")})
    # named otherwise inside the archive: its top index is named by the ref
    assert ("images", "import", "--index-name", "k8s-lab.local/other:1", "/x/o.tar") in calls


def test_an_archive_ctr_cannot_name_by_base_is_named_by_its_index() -> None:
    calls: list[tuple[str, ...]] = []

    def ctr(*args: str) -> str:
        calls.append(args)
        if "--base-name" in args:
            raise RuntimeError("not a tag")
        named = any("--index-name" in call for call in calls)
        return "lab.local/full:1\n" if args[:2] == ("images", "ls") and named else ""

    assert ni.import_images(ctr, {"lab.local/full:1": Path("/x/f.tar")}) == ["lab.local/full:1"]
    assert ("images", "import", "--index-name", "lab.local/full:1", "/x/f.tar") in calls
