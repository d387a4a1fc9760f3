"""The kubeconfig renderers: exact, deterministic text, and no credential where none belongs."""

from __future__ import annotations

import pytest
import yaml

from components._kubeconfig import EXEC_API_VERSION, exec_kubeconfig, token_kubeconfig

SERVER = "https://ABC123.gr7.eu-west-1.eks.amazonaws.com"
CA = "LS0tLS1CRUdJTi=="
GET_TOKEN = ["eks", "get-token", "--cluster-name", "app-ie", "--region", "eu-west-1"]

# The exact text a reviewer should expect; a change to the renderer shows up here.
EXPECTED_EXEC = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTi==
    server: https://ABC123.gr7.eu-west-1.eks.amazonaws.com
  name: app-ie
contexts:
- context:
    cluster: app-ie
    user: app-ie
  name: app-ie
current-context: app-ie
kind: Config
preferences: {}
users:
- name: app-ie
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - eks
      - get-token
      - --cluster-name
      - app-ie
      - --region
      - eu-west-1
      command: aws
      interactiveMode: Never
      provideClusterInfo: false
"""


def _exec(**overrides):
    kwargs = {
        "name": "app-ie",
        "server": SERVER,
        "ca_data": CA,
        "command": "aws",
        "args": GET_TOKEN,
    }
    kwargs.update(overrides)
    return exec_kubeconfig(**kwargs)


def test_exec_kubeconfig_is_the_exact_expected_text():
    assert _exec() == EXPECTED_EXEC


def test_exec_kubeconfig_selects_its_own_context_and_never_prompts():
    config = yaml.safe_load(_exec())
    assert config["current-context"] == "app-ie"
    (context,) = config["contexts"]
    assert context["context"] == {"cluster": "app-ie", "user": "app-ie"}
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == SERVER
    assert cluster["cluster"]["certificate-authority-data"] == CA
    (user,) = config["users"]
    assert set(user["user"]) == {"exec"}, "an exec kubeconfig must carry no static credential"
    exec_ = user["user"]["exec"]
    assert exec_["apiVersion"] == EXEC_API_VERSION
    assert exec_["interactiveMode"] == "Never"
    assert exec_["command"] == "aws"
    assert exec_["args"] == GET_TOKEN


def test_exec_kubeconfig_env_is_sorted_by_name_and_omitted_when_empty():
    config = yaml.safe_load(_exec(env={"B_VAR": "2", "A_VAR": "1"}))
    env = config["users"][0]["user"]["exec"]["env"]
    assert env == [{"name": "A_VAR", "value": "1"}, {"name": "B_VAR", "value": "2"}]
    assert "env" not in yaml.safe_load(_exec(env={}))["users"][0]["user"]["exec"]


def test_rendering_does_not_depend_on_mapping_order():
    first = _exec(env={"A_VAR": "1", "B_VAR": "2"})
    second = _exec(env={"B_VAR": "2", "A_VAR": "1"})
    assert first == second
    assert first == yaml.safe_dump(yaml.safe_load(first), sort_keys=True)


def test_token_kubeconfig_carries_only_the_token():
    text = token_kubeconfig(name="hub", server=SERVER, ca_data=CA, token="sa-token-value")
    config = yaml.safe_load(text)
    assert config["users"] == [{"name": "hub", "user": {"token": "sa-token-value"}}]
    assert config["current-context"] == "hub"
    assert config["clusters"][0]["cluster"] == {
        "server": SERVER,
        "certificate-authority-data": CA,
    }
    assert text == yaml.safe_dump(config, sort_keys=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server": "http://insecure.example"}, "must be an https:// URL"),
        ({"ca_data": ""}, "certificate authority data is empty"),
    ],
)
def test_bad_cluster_data_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _exec(**kwargs)
    with pytest.raises(ValueError, match=message):
        token_kubeconfig(**{"name": "hub", "server": SERVER, "ca_data": CA, "token": "t", **kwargs})


def test_empty_token_is_refused():
    with pytest.raises(ValueError, match="the token is empty"):
        token_kubeconfig(name="hub", server=SERVER, ca_data=CA, token="")
