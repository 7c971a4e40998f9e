"""The files ``mlops promote`` writes beside the job's notebook: Dockerfile, entry script,
Kubernetes manifests, CI files, README. Plain text with the job's values filled in."""

from __future__ import annotations

import json

from .spec import JobSpec

PORT = 8080
DEFAULT_SCHEDULE = "0 3 * * 0"

DOCKERIGNORE = """\
# Only what the Dockerfile copies is needed; keep the build context small.
*
!requirements.txt
!notebook.ipynb
!job.toml
!entrypoint.sh
!wheelhouse/
"""

WHEELHOUSE_README = """\
`mlops job build --wheelhouse` downloads every wheel the image needs into this folder first, so the
image builds with no network access. The wheels are not meant to be committed.
"""


def _q(s: str) -> str:
    return json.dumps(s)  # a YAML/JSON double-quoted string


def dockerfile(spec: JobSpec) -> str:
    serve = spec.serves
    lines = [
        f"# Job {spec.name}, promoted from {spec.source or 'a notebook'} by mlops-jupyter.",
        f"#   build:   mlops job build {spec.name}          (or: docker build -t {spec.image} .)",
        f"#   retrain: docker run --rm -v mlops-store:/data {spec.image} retrain [-p NAME VALUE]",
    ]
    if serve:
        lines.append(f"#   serve:   docker run --rm -p {PORT}:{PORT} -e MLOPS_SERVE_TOKEN=... -v mlops-store:/data "
                     f"{spec.image} serve")
    lines += [
        "# The base image is a build argument (any image with Python 3.10+ and the venv module).",
        "ARG BASE=python:3.11-slim",
        "FROM ${BASE}",
        "",
        "# pip reads these: --wheelhouse builds set PIP_NO_INDEX=true to install from wheelhouse/ only",
        "ARG PIP_NO_INDEX=false",
        "ARG PIP_FIND_LINKS=/tmp/build/wheelhouse",
        "ENV PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1 \\",
        "    VIRTUAL_ENV=/opt/venv \\",
        "    PATH=/opt/venv/bin:$PATH \\",
        "    MLOPS_HOME=/data \\",
        "    MLOPS_JOB_WORKDIR=/app \\",
        f"    MLOPS_SERVE_PORT={PORT}",
        "",
        "# Dependencies in their own layer: rebuilt only when requirements.txt (or the wheelhouse) changes.",
        "COPY requirements.txt /tmp/build/requirements.txt",
        "COPY wheelhouse/ /tmp/build/wheelhouse/",
        "RUN python3 -m venv /opt/venv \\",
        "    && pip install --no-cache-dir -r /tmp/build/requirements.txt \\",
        "    && rm -rf /tmp/build \\",
        "    && useradd --create-home --uid 10001 --shell /bin/sh mlops \\",
        "    && mkdir -p /data /app \\",
        "    && chown mlops:mlops /data /app",
        "",
        "WORKDIR /app",
        "COPY --chown=10001:10001 notebook.ipynb job.toml entrypoint.sh /app/",
        "USER 10001:10001",
        "VOLUME [\"/data\"]",
    ]
    if serve:
        lines.append(f"EXPOSE {PORT}")
    lines += [
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\",
        "    CMD [\"python\", \"-m\", \"mlops_jupyter.jobs.health\"]",
        "ENTRYPOINT [\"/app/entrypoint.sh\"]",
        f"CMD [\"{'serve' if serve else 'run'}\"]",
    ]
    return "\n".join(lines) + "\n"


def entrypoint(spec: JobSpec) -> str:
    serve = (
        "  serve)\n"
        "    shift\n"
        "    echo serve > /tmp/mlops-mode\n"
        f"    exec mlops job serve /app --host 0.0.0.0 --port \"${{MLOPS_SERVE_PORT:-{PORT}}}\" \"$@\" ;;\n"
    ) if spec.serves else ""
    retrain = (
        "  retrain)\n"
        "    shift\n"
        "    echo retrain > /tmp/mlops-mode\n"
        "    exec mlops retrain /app \"$@\" ;;\n"
    ) if spec.serves else ""
    check = (
        "  check)\n"
        "    shift\n"
        "    echo retrain > /tmp/mlops-mode\n"
        "    # exit 3 means the rule fired and the retraining ran: a success for a scheduler\n"
        "    code=0\n"
        "    mlops monitor check /app \"$@\" || code=$?\n"
        "    if [ \"$code\" -eq 3 ]; then code=0; fi\n"
        "    exit \"$code\" ;;\n"
    ) if spec.serves else ""
    commands = "serve | retrain | check | run" if spec.serves else "run"
    return (
        "#!/bin/sh\n"
        f"# The image's commands: {commands} [options], or any other command to run it as is.\n"
        "set -eu\n"
        f"case \"${{1:-{'serve' if spec.serves else 'run'}}}\" in\n"
        f"{serve}{retrain}{check}"
        "  run)\n"
        "    shift\n"
        "    echo run > /tmp/mlops-mode\n"
        "    exec mlops job run /app \"$@\" ;;\n"
        "  *)\n"
        "    exec \"$@\" ;;\n"
        "esac\n"
    )


def _labels(spec: JobSpec, indent: int) -> str:
    pad = " " * indent
    return f"{pad}app.kubernetes.io/name: {_q(spec.name)}\n{pad}app.kubernetes.io/managed-by: mlops-jupyter\n"


def _store_env(pad: str) -> str:
    return (
        f"{pad}# A team store (PostgreSQL + object store): uncomment and create the secret.\n"
        f"{pad}# - name: MLOPS_STORE_URL\n"
        f"{pad}#   valueFrom: {{secretKeyRef: {{name: mlops-store, key: url}}}}\n"
        f"{pad}# - name: MLOPS_ARTIFACTS_URL\n"
        f"{pad}#   valueFrom: {{secretKeyRef: {{name: mlops-store, key: artifacts}}}}\n"
    )


def _store_volume(spec: JobSpec, indent: int) -> str:
    """The /data mount (container at *indent* + 4) and its claim (pod spec at *indent*)."""
    c, p = " " * (indent + 4), " " * indent
    return (f"{c}volumeMounts:\n{c}  - name: store\n{c}    mountPath: /data\n"
            f"{p}volumes:\n{p}  - name: store\n{p}    persistentVolumeClaim:\n"
            f"{p}      claimName: {_q(spec.name + '-store')}\n")


def k8s_deployment(spec: JobSpec) -> str:
    return (
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "metadata:\n"
        f"  name: {_q(spec.name)}\n"
        "  labels:\n" + _labels(spec, 4) +
        "spec:\n"
        "  replicas: 1\n"
        "  selector:\n"
        "    matchLabels:\n"
        f"      app.kubernetes.io/name: {_q(spec.name)}\n"
        "  template:\n"
        "    metadata:\n"
        "      labels:\n" + _labels(spec, 8) +
        "    spec:\n"
        "      securityContext:\n"
        "        runAsNonRoot: true\n"
        "        runAsUser: 10001\n"
        "        fsGroup: 10001\n"
        "      containers:\n"
        "        - name: serve\n"
        f"          image: {_q(spec.image or '')}\n"
        "          args: [\"serve\"]\n"
        "          ports:\n"
        f"            - containerPort: {PORT}\n"
        "              name: http\n"
        "          env:\n"
        "            - name: MLOPS_SERVE_TOKEN\n"
        "              valueFrom:\n"
        "                secretKeyRef:\n"
        f"                  name: {_q(spec.name + '-token')}\n"
        "                  key: token\n" + _store_env("            ") +
        "          readinessProbe:\n"
        "            httpGet: {path: /health, port: http}\n"
        "            periodSeconds: 5\n"
        "          livenessProbe:\n"
        "            httpGet: {path: /health, port: http}\n"
        "            initialDelaySeconds: 60\n"
        "            periodSeconds: 30\n"
        "          resources:\n"
        "            requests: {cpu: \"500m\", memory: 512Mi}\n"
        "            limits: {memory: 2Gi}\n"
    ) + _store_volume(spec, 6)


def k8s_service(spec: JobSpec) -> str:
    return (
        "apiVersion: v1\n"
        "kind: Service\n"
        "metadata:\n"
        f"  name: {_q(spec.name)}\n"
        "  labels:\n" + _labels(spec, 4) +
        "spec:\n"
        "  type: ClusterIP\n"
        "  selector:\n"
        f"    app.kubernetes.io/name: {_q(spec.name)}\n"
        "  ports:\n"
        "    - name: http\n"
        "      port: 80\n"
        "      targetPort: http\n"
    )


MONITOR_SCHEDULE = "17 * * * *"


def k8s_cronjob(spec: JobSpec, command: str | None = None) -> str:
    """The CronJob that retrains on schedule (``retrain``), or the hourly one that evaluates the
    monitoring rule and retrains only when it fires (``check``)."""
    command = command or ("retrain" if spec.serves else "run")
    if command == "check":
        schedule, note = MONITOR_SCHEDULE, "  # hourly: `mlops monitor check` retrains only when [retrain] retrain_when fires\n"
    else:
        schedule = spec.schedule or DEFAULT_SCHEDULE
        note = "" if spec.schedule else "  # no schedule in job.toml: weekly, Sunday 03:00; edit to taste\n"
    return (
        "apiVersion: batch/v1\n"
        "kind: CronJob\n"
        "metadata:\n"
        f"  name: {_q(spec.name + '-' + command)}\n"
        "  labels:\n" + _labels(spec, 4) +
        "spec:\n"
        f"  schedule: {_q(schedule)}\n" + note +
        "  concurrencyPolicy: Forbid\n"
        "  successfulJobsHistoryLimit: 3\n"
        "  failedJobsHistoryLimit: 3\n"
        "  jobTemplate:\n"
        "    spec:\n"
        "      backoffLimit: 1\n"
        "      template:\n"
        "        metadata:\n"
        "          labels:\n" + _labels(spec, 12) +
        "        spec:\n"
        "          restartPolicy: Never\n"
        "          securityContext:\n"
        "            runAsNonRoot: true\n"
        "            runAsUser: 10001\n"
        "            fsGroup: 10001\n"
        "          containers:\n"
        f"            - name: {command}\n"
        f"              image: {_q(spec.image or '')}\n"
        f"              args: [\"{command}\"]\n"
        "              env:\n" + _store_env("                ") +
        "                - name: MLOPS_JOB_TRIGGER\n"
        f"                  value: {'monitor' if command == 'check' else 'schedule'}\n"
    ) + _store_volume(spec, 10)


def github_workflow(spec: JobSpec) -> str:
    folder = f"jobs/{spec.name}"
    return (
        f"# Job {spec.name}: run the notebook with the small [smoke] parameters, then build the image.\n"
        f"# Copy to .github/workflows/{spec.name}.yml.\n"
        f"name: job {spec.name}\n"
        "on:\n"
        "  push:\n"
        f"    paths: [{_q(folder + '/**')}]\n"
        "  workflow_dispatch: {}\n"
        "jobs:\n"
        "  smoke:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - uses: actions/setup-python@v5\n"
        "        with:\n"
        "          python-version: \"3.11\"\n"
        f"      - run: pip install -r {folder}/requirements.txt\n"
        f"      - run: mlops job run {folder} --smoke\n"
        "  image:\n"
        "    needs: smoke\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        f"      - run: docker build -t {spec.image} {folder}\n"
    )


def gitlab_ci(spec: JobSpec) -> str:
    folder = f"jobs/{spec.name}"
    return (
        f"# Job {spec.name}: include from your .gitlab-ci.yml (include: local: {folder}/ci/gitlab-ci.yml).\n"
        "stages: [smoke, image]\n"
        f"{spec.name}-smoke:\n"
        "  stage: smoke\n"
        "  image: python:3.11-slim\n"
        "  rules:\n"
        "    - changes:\n"
        f"        - {_q(folder + '/**/*')}\n"
        "  script:\n"
        f"    - pip install -r {folder}/requirements.txt\n"
        f"    - mlops job run {folder} --smoke\n"
        f"{spec.name}-image:\n"
        "  stage: image\n"
        "  image: docker:27\n"
        "  services: [\"docker:27-dind\"]\n"
        f"  needs: [{_q(spec.name + '-smoke')}]\n"
        "  script:\n"
        f"    - docker build -t {spec.image} {folder}\n"
    )


def readme(spec: JobSpec) -> str:
    params = "\n".join(f"| `{p.name}` | {p.type} | `{p.default!r}` |" for p in spec.parameters.values())
    table = ("| parameter | type | default |\n| --- | --- | --- |\n" + params + "\n") if params else \
        "This job has no parameters.\n"
    model = ""
    if spec.serves:
        rule = (f"The best execution by `{spec.metric}` ({'higher' if spec.direction == 'max' else 'lower'} is better) "
                f"registers a new version of `{spec.model}` (the challenger); it takes `@{spec.alias}` only if it "
                f"beats the version holding it now (the champion).") if spec.metric else \
            f"The execution registers a new version of `{spec.model}` and gives it `@{spec.alias}`."
        model = f"""
## Retrain

```
mlops retrain {spec.name} [--grid n=100,300 depth=3,5] [--workers 2] [--dask-scheduler tcp://HOST:8786]
```

{rule} The decision, with both figures, is printed and stored with the batch's run.

## Monitor

```
mlops monitor {spec.model}@{spec.alias} --since 7d      # traffic, latency, accuracy per window and version
mlops monitor check {spec.name} [--dry-run]             # evaluate [retrain] retrain_when; retrain if it fires
```

`check` compares the last `window` of logged traffic with the champion's training data (or
`[retrain] reference`), computes the performance figures from labels posted to `/feedback`, stores
the decision, and exits 0 (not fired), 3 (fired, retrained), 1 (retraining failed) or 2 (bad input).
`k8s/cronjob-monitor.yaml` runs it every hour.

## Serve

```
mlops job serve {spec.name} --port {PORT}        # {spec.model}@{spec.alias}, following the alias when it moves
```
"""
    return f"""# Job `{spec.name}`

Promoted from `{spec.source or 'a notebook'}` by mlops-jupyter. `notebook.ipynb` is the notebook with its
outputs stripped and one `parameters` cell; `job.toml` lists the parameters, their types and defaults.

## Run

```
mlops job run {spec.name} [-p NAME VALUE ...]        # one tracked execution (papermill)
mlops job run {spec.name} --smoke                    # with the small values in job.toml's [smoke]
```

{table}{model}
## Container

```
mlops job build {spec.name} [--engine docker|podman] [--wheelhouse] [--base IMAGE]
docker run --rm -v mlops-store:/data {spec.image} {'retrain' if spec.serves else 'run'}
{f'docker run --rm -p {PORT}:{PORT} -e MLOPS_SERVE_TOKEN=... -v mlops-store:/data {spec.image} serve' if spec.serves else ''}
```

`--wheelhouse` downloads every wheel first so the image builds with no network. Serving from a
container listens on all addresses, so it needs a token (`MLOPS_SERVE_TOKEN`). The store is `/data`
(mount a volume), or a team store through `MLOPS_STORE_URL` and `MLOPS_ARTIFACTS_URL`.

## Kubernetes and CI

`k8s/` holds {'a Deployment and a Service for serving and ' if spec.serves else ''}a CronJob
({spec.schedule or DEFAULT_SCHEDULE}). `ci/` holds a GitHub Actions workflow and a GitLab CI file that run
the notebook with the smoke parameters and build the image.
"""
