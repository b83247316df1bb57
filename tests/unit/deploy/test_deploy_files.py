"""deploy/: every file parses, and the facts that must agree with the code do (port, probe paths, env names,
non-root, drain bounds). `docker compose config` and `systemd-analyze verify` run where they work."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kbbot.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}
HTTP_PORT = Settings.model_fields["http_port"].default
OPS_PORT = 9090  # the internal port every deploy file gives OPS_PORT
DRAIN_SECONDS = Settings.model_fields["shutdown_grace_seconds"].default  # kbbot's whole stop
#: What every orchestrator in deploy/ waits before SIGKILL: they agree with each other and with the README.
KILL_SECONDS = 30


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_docs() -> dict[tuple[str, str], dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_all(path):
            assert {"apiVersion", "kind"} <= doc.keys(), path
            docs[(doc["kind"], doc.get("metadata", {}).get("name", ""))] = doc
    return docs


def test_http_port_default_is_3000() -> None:
    assert HTTP_PORT == 3000
    from kbbot.ops.shutdown import GracefulShutdown, TaskTracker

    assert GracefulShutdown(TaskTracker())._grace == DRAIN_SECONDS


def test_every_yaml_file_parses() -> None:
    files = [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    assert len(files) >= 8
    for path in files:
        assert load_all(path), path


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # The Discord pod is opt-in (it needs a real DISCORD_BOT_TOKEN): listed, commented out.
    assert listed == on_disk - {"discord.yaml"}
    assert "  # - discord.yaml" in (K8S / "kustomization.yaml").read_text().splitlines()


def test_deployment_probes_port_and_security() -> None:
    docs = k8s_docs()
    deployment = docs[("Deployment", "kbbot")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": HTTP_PORT, "ops": OPS_PORT}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # kbbot's whole stop plus preStop (5 s) must fit before SIGKILL.
    assert pod["terminationGracePeriodSeconds"] == KILL_SECONDS > DRAIN_SECONDS + 5
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert ("ConfigMap", "kbbot") in docs and ("Secret", "kbbot") in docs and refs == {"kbbot"}
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(OPS_PORT) and annotations["prometheus.io/path"] == "/metrics"


def test_configmap_and_secret_use_only_real_settings() -> None:
    docs = k8s_docs()
    config = docs[("ConfigMap", "kbbot")]["data"]
    secret = docs[("Secret", "kbbot")]["stringData"]
    assert set(config) <= SETTINGS_ENV, set(config) - SETTINGS_ENV
    assert set(secret) <= SETTINGS_ENV, set(secret) - SETTINGS_ENV
    assert config["HTTP_HOST"] == "0.0.0.0" and config["HTTP_PORT"] == str(HTTP_PORT)
    assert config["OPS_PORT"] == str(OPS_PORT)
    assert config["LOG_FORMAT"] == "json"
    # Secrets only in the Secret; nothing secret in the ConfigMap.
    secret_names = {"PERFECTWIKI_API_TOKEN", "MATHUB_API_KEY", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
                    "SLACK_APP_TOKEN", "DISCORD_BOT_TOKEN", "REDIS_URL"}  # fmt: skip
    assert not set(config) & secret_names
    assert "REDIS_URL" in secret
    # Every value must be a string for Kubernetes to accept it.
    assert all(isinstance(v, str) for v in [*config.values(), *secret.values()])
    # The values load as real Settings (types and validators agree).
    Settings(**{k.lower(): v for k, v in {**config, **secret}.items() if v})


def container_env(docs: dict[tuple[str, str], dict[str, Any]], deployment: str) -> dict[str, str]:
    """What kbbot's process in ``deployment`` sees, as Kubernetes builds it: envFrom in order (the last source
    wins), then env (which wins over envFrom), secretKeyRefs resolved from the manifests' Secrets."""
    (container,) = docs[("Deployment", deployment)]["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for ref in container["envFrom"]:
        ((kind, target),) = ref.items()
        source = docs[("Secret" if kind == "secretRef" else "ConfigMap", target["name"])]
        env.update(source.get("stringData") or source["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        key = item["valueFrom"]["secretKeyRef"]
        secret = docs[("Secret", key["name"])]["stringData"]
        assert key.get("optional") or key["key"] in secret, f"{deployment}: {item['name']} would not start"
        if key["key"] in secret:
            env[item["name"]] = secret[key["key"]]
    return env


def _knowledgebase_secret_names() -> set[str]:
    """The variables knowledgebases.yaml's TOML reads its tokens from (``"env:NAME"``)."""
    return set(re.findall(r'"env:([A-Z0-9_]+)"', (K8S / "knowledgebases.yaml").read_text()))


def test_discord_runs_in_exactly_one_pod_and_slack_pods_never_connect_to_discord() -> None:
    # Every gateway connection of a token gets every event of its shards (Discord's docs, developers/events/
    # gateway.mdx "Sharding"), and discord.py's AutoShardedClient opens every shard 0..count-1 in one process
    # (Rapptz/discord.py discord/shard.py, launch_shards: `self.shard_ids or range(self.shard_count)`): a second
    # pod, during a rolling update too, would answer every Discord question twice.
    docs = k8s_docs()
    discord = docs[("Deployment", "kbbot-discord")]
    slack = docs[("Deployment", "kbbot")]
    assert discord["spec"]["replicas"] == 1 and discord["spec"]["strategy"] == {"type": "Recreate"}
    assert all(hpa["spec"]["scaleTargetRef"]["name"] != "kbbot-discord"
               for (kind, _), hpa in docs.items() if kind == "HorizontalPodAutoscaler")  # fmt: skip
    labels = discord["spec"]["template"]["metadata"]["labels"]
    assert discord["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for (kind, _), service in docs.items():
        if kind == "Service":  # no Service sends traffic to it (Slack's selects app.kubernetes.io/name: kbbot)
            assert not service["spec"]["selector"].items() <= labels.items()
    # The same container as Slack's: image, ports, probes, security, volumes, annotations, stop bound.
    (template, slack_template) = (discord["spec"]["template"], slack["spec"]["template"])
    (pod, slack_pod) = (template["spec"], slack_template["spec"])
    ((container,), (slack_container,)) = (pod["containers"], slack_pod["containers"])
    same = ["image", "args", "envFrom", "ports", "readinessProbe", "livenessProbe", "startupProbe", "resources",
            "securityContext", "volumeMounts"]  # fmt: skip
    assert {k: container[k] for k in same} == {k: slack_container[k] for k in same}
    assert pod["securityContext"] == slack_pod["securityContext"] and pod["volumes"] == slack_pod["volumes"]
    assert template["metadata"]["annotations"] == slack_template["metadata"]["annotations"]
    assert pod["terminationGracePeriodSeconds"] == KILL_SECONDS > DRAIN_SECONDS
    # Every env name is a setting or a token knowledgebases.yaml reads; each pod runs one platform.
    for name, deployment in (("kbbot-discord", discord), ("kbbot", slack)):
        (spec,) = deployment["spec"]["template"]["spec"]["containers"]
        names = {item["name"] for item in spec["env"]}
        assert names <= SETTINGS_ENV | _knowledgebase_secret_names(), names - SETTINGS_ENV
        values: dict[str, Any] = {k.lower(): v for k, v in container_env(docs, name).items()}
        settings = load_settings(_env_file=None, **{k: v for k, v in values.items() if k in Settings.model_fields})
        platforms = {p for p, token in (("slack", settings.slack_bot_token), ("discord", settings.discord_bot_token))
                     if token is not None}  # fmt: skip
        assert platforms == ({"discord"} if name == "kbbot-discord" else {"slack"}), name
        assert settings.slack_app_token is None or name == "kbbot"
    for readme in (ROOT / "README.md", DEPLOY / "README.md"):
        text = " ".join(readme.read_text().split())
        assert "`deploy/k8s/discord.yaml`: a Deployment of exactly one pod per bot token (`replicas: 1`, " \
               "`strategy: Recreate`" in text, readme  # fmt: skip


def test_service_and_hpa_point_at_the_deployment() -> None:
    docs = k8s_docs()
    service = docs[("Service", "kbbot")]
    deployment = docs[("Deployment", "kbbot")]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]  # the ops port stays internal
    hpa = docs[("HorizontalPodAutoscaler", "kbbot")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "kbbot"}
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    redis_service = docs[("Service", "kbbot-redis")]
    secret_url = docs[("Secret", "kbbot")]["stringData"]["REDIS_URL"]
    assert f"//{redis_service['metadata']['name']}:{redis_service['spec']['ports'][0]['port']}/" in secret_url


def test_compose_file() -> None:
    (compose,) = load_all(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"kbbot", "redis"}
    bot = services["kbbot"]
    assert bot["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / ".." / bot["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert bot["env_file"] == ["../.env"] and (ROOT / ".env.example").exists()
    env = bot["environment"]
    assert set(env) <= SETTINGS_ENV
    assert env["REDIS_URL"] == "redis://redis:6379/0" and env["HTTP_HOST"] == "0.0.0.0"
    assert bot["ports"] == [f"{HTTP_PORT}:{HTTP_PORT}"] and env["HTTP_PORT"] == str(HTTP_PORT)
    assert env["OPS_PORT"] == str(OPS_PORT)  # not published
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in services["redis"]
    grace = int(re.fullmatch(r"(\d+)s", bot["stop_grace_period"]).group(1))  # type: ignore[union-attr]
    assert grace == KILL_SECONDS > DRAIN_SECONDS
    assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"]


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "${PYTHON_IMAGE}" for line in froms)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", text, flags=re.MULTILINE)
    # redis: one image for one replica or many; tantivy: SEARCH_ENGINE=tantivy (README) works in the image.
    assert 'pip install --prefix=/install --constraint constraints.txt ".[redis,tantivy]"' in text
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"HTTP_HOST=0\.0\.0\.0", text)
    assert f"HTTP_PORT={HTTP_PORT}" in text and f"OPS_PORT={OPS_PORT}" in text
    assert f"EXPOSE {HTTP_PORT} {OPS_PORT}" in text
    healthcheck = text[text.index("HEALTHCHECK") :]
    assert "/healthz" in healthcheck.split("\n\n")[0] or "/healthz" in healthcheck.splitlines()[1]
    env_names = set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", text))
    assert {"HTTP_HOST", "HTTP_PORT", "KBBOT_DATA_DIR", "LOG_FORMAT"} <= env_names
    assert (env_names - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
                         "PIP_DISABLE_PIP_VERSION_CHECK", "PYTHON_IMAGE"}) <= SETTINGS_ENV  # fmt: skip
    assert lines[-2:] == ['ENTRYPOINT ["kbbot"]', 'CMD ["run"]']
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert "!kbbot/**" in ignore and "!pyproject.toml" in ignore and "!deploy/constraints.txt" in ignore


def test_systemd_unit() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "kbbot.service")
    service = parser["Service"]
    assert service["ExecStart"].endswith("kbbot run")
    assert service["User"] not in ("root", "0")
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) == KILL_SECONDS > DRAIN_SECONDS
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": ""}.items():  # fmt: skip
        assert service[key] == value, key
    env = dict(item.split("=", 1) for item in service["Environment"].split())
    assert set(env) <= SETTINGS_ENV and env["HTTP_PORT"] == str(HTTP_PORT) and env["OPS_PORT"] == str(OPS_PORT)
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed")
    # The unit names a binary that only exists after installation; check everything else.
    unit = tmp_path / "kbbot.service"
    unit.write_text((DEPLOY / "kbbot.service").read_text().replace("/opt/kbbot/venv/bin/kbbot run", "/bin/true"))
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "kbbot.service" in line]
    assert result.returncode == 0 and not complaints, complaints


def _docker_compose() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        try:
            probe = subprocess.run([*cmd, "version"], capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return cmd
    return None


def test_docker_compose_config(tmp_path: Path) -> None:
    cmd = _docker_compose()
    if cmd is None:
        pytest.skip("docker compose is not available on this machine")
    # A copy with an empty .env next to it, so the check never touches the developer's real .env.
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    (tmp_path / ".env").write_text("PERFECTWIKI_API_TOKEN=placeholder\n")
    result = subprocess.run(
        [*cmd, "-f", str(tmp_path / "deploy" / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_readmes_state_the_same_shutdown_numbers() -> None:
    for readme in (ROOT / "README.md", DEPLOY / "README.md"):
        text = " ".join(readme.read_text().split())
        assert f"`SHUTDOWN_GRACE_SECONDS` ({DRAIN_SECONDS:g} s)" in text, readme
        assert f"kills at {KILL_SECONDS} s" in text and f"`stop_grace_period: {KILL_SECONDS}s`" in text, readme
        assert f"`terminationGracePeriodSeconds: {KILL_SECONDS}`" in text, readme
        assert f"`TimeoutStopSec={KILL_SECONDS}`" in text, readme


def test_readmes_describe_the_same_http_paths() -> None:
    # deploy/README.md repeats README's Deploy section; its /readyz row and OPS_PORT sentence had fallen behind.
    def rows(readme: Path) -> list[str]:
        return [line for line in readme.read_text().splitlines() if line.startswith("| `/")]

    assert rows(DEPLOY / "README.md") == rows(ROOT / "README.md") != []
    assert "with `OPS_PORT` set, `/readyz` and" in (DEPLOY / "README.md").read_text()


def _env_example() -> dict[str, str]:
    """`cp .env.example .env` as an env file: NAME=value lines, blank values included."""
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_a_secret_made_from_a_copied_env_example_keeps_the_deployments_settings() -> None:
    # README: `kubectl create secret generic kbbot --from-env-file=.env`. With the Secret last in envFrom its
    # HTTP_HOST=127.0.0.1 and blank OPS_PORT won (Kubernetes: the last source wins), so every probe failed.
    docs = k8s_docs()
    (container,) = docs[("Deployment", "kbbot")]["spec"]["template"]["spec"]["containers"]
    sources = {"configMapRef": docs[("ConfigMap", "kbbot")]["data"], "secretRef": _env_example()}
    env: dict[str, str] = {}
    for ref in container["envFrom"]:
        (kind,) = ref
        env.update(sources[kind])
    assert env["HTTP_HOST"] == "0.0.0.0" and env["OPS_PORT"] == str(OPS_PORT)
    assert env["KBBOT_DATA_DIR"] == "/data" and env["LOG_FORMAT"] == "json"


def test_systemd_install_lines_keep_the_units_settings() -> None:
    # systemd: EnvironmentFile= overrides Environment=, so the documented install line must leave out of
    # kbbot.env every name the unit sets (a copied .env.example has OPS_PORT=, KBBOT_DATA_DIR=, LOG_FORMAT=text).
    text = (DEPLOY / "kbbot.service").read_text()
    (pattern,) = re.findall(r"grep -vE '(.+?)' \.env", text)
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    unit = dict(item.split("=", 1) for item in parser["Service"]["Environment"].split())
    installed = {k: v for k, v in _env_example().items() if not re.match(pattern, f"{k}={v}")}
    assert {**unit, **installed}.items() >= unit.items()


def test_systemd_install_lines_install_this_checkout() -> None:
    # They said `pip install 'kbbot[redis]'` into a fresh venv: that asks the package index for a "kbbot" release,
    # which this project does not publish. Install the checkout, pinned like the Docker image.
    lines = [line for line in (DEPLOY / "kbbot.service").read_text().splitlines() if line.startswith("#   ")]
    [pip] = [line for line in lines if "pip install" in line]
    assert "--constraint deploy/constraints.txt '.[redis]'" in pip and "'kbbot[" not in pip
    copied = [word for line in lines for word in line.split() if word.startswith("deploy/")]
    assert copied and all((ROOT / path).is_file() for path in copied), copied
