"""PyTorch and Keras versions beside the registry: exported to MLflow (loaded there without pickle),
mirrored to W&B (offline), checked by fsck without importing either framework, and in lineage.

Tiny models on synthetic data, so each test takes seconds."""

import io
import json
import os
import subprocess
import zipfile

import numpy as np
import pytest

from .conftest import PY, python_env, tamper

torch = pytest.importorskip("torch")

os.environ.setdefault("KERAS_BACKEND", "torch")

from .test_nets import data, eager, make_net  # noqa: E402 (after torch is known to be there)


def keras_model(X, y, lam: bool = False):
    import keras

    keras.utils.set_random_seed(0)
    layers = [keras.Input((20,)), keras.layers.Dense(16, activation="relu")]
    if lam:
        layers.append(keras.layers.Lambda(lambda t: t * 2))
    model = keras.Sequential([*layers, keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=1, verbose=0)
    return model


def set_version_bytes(store, ref: str, data: bytes) -> None:
    """Point a model version at other bytes, stored under their own digest (a file damaged before it
    was registered: the digest matches, the archive does not read)."""
    from mlops_jupyter.store import schema as S

    name, version = ref.split("@v")
    digest, size = store.blobs.put_bytes(data)
    mv = S.model_versions
    store.meta.run_transaction(lambda c: c.execute(
        mv.update().where(mv.c.name == name, mv.c.version == int(version)).values(digest=digest, size=size)))


# -- MLflow -----------------------------------------------------------------------------------------
def export(project, tmp_path, monkeypatch) -> str:
    pytest.importorskip("mlflow")
    from mlops_jupyter.integrations.mlflow_export import export_mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    export_mlflow(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # MLflow refuses every pickle it would load, and checks a "pt2" archive holds none
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    return uri


def test_mlflow_export_of_a_torch_version_loads_as_a_pt2_program_without_pickle(store, project, tmp_path,
                                                                               monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    import mlops_jupyter as mj

    net, X, _ = make_net()
    v = mj.models.register(net, name="digits", example=X[:32])
    uri = export(project, tmp_path, monkeypatch)

    want = eager(net, X)
    m = mlflow.pytorch.load_model("models:/digits/1")
    with torch.no_grad():
        got = m(torch.from_numpy(X)).numpy()
    assert np.abs(got - want).max() <= 1e-5
    assert np.abs(mlflow.pyfunc.load_model("models:/digits/1").predict(X) - want).max() <= 1e-5
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version("digits", "1")
    assert mv.tags["mlops.flavor"] == "torch" and mv.tags["mlops.digest"] == v.digest
    info = mlflow.models.get_model_info("models:/digits/1")
    assert set(info.flavors) == {"pytorch", "python_function"}
    assert info.signature.inputs.to_dict() == [{"type": "tensor", "tensor-spec": {"dtype": "float32",
                                                                                 "shape": (-1, 20)}}]
    folder = mlflow.artifacts.download_artifacts(mv.source, dst_path=str(tmp_path / "dl"))
    # our own file, byte for byte, beside MLflow's archive; the card says what is what
    with open(os.path.join(folder, "model.pt2.zip"), "rb") as f:
        assert f.read() == store.blobs.get_bytes(v.digest)
    card = json.load(open(os.path.join(folder, "mlops_model.json")))
    assert (card["flavor"], card["file"], card["digest"], card["mlflow_flavor"]) == \
        ("torch", "model.pt2.zip", v.digest, "pytorch")
    # the archive: JSON, text and raw tensor bytes; its only torch.save record holds plain tensors
    with zipfile.ZipFile(os.path.join(folder, "data", "model.pt2")) as z:
        saved = [n for n in z.namelist() if z.read(n)[:2] == b"PK"]
        assert [n.split("/", 1)[1] for n in saved] == ["data/sample_inputs/model.pt"]
        sample = torch.load(io.BytesIO(z.read(saved[0])), weights_only=True)
        assert sample[0][0].shape == (8, 20)


def test_mlflow_export_of_a_keras_version_is_the_keras_file_loaded_in_safe_mode(store, project, tmp_path,
                                                                                monkeypatch):
    import mlflow

    import mlops_jupyter as mj

    X, y = data()
    model = keras_model(X, y)
    v = mj.models.register(model, name="kdigits", example=X[:16])
    lam = keras_model(X, y, lam=True)
    mj.models.register(lam, name="klam", example=X[:4], pickle=True)
    uri = export(project, tmp_path, monkeypatch)

    want = model.predict(X, verbose=0)
    assert np.abs(mlflow.keras.load_model("models:/kdigits/1").predict(X, verbose=0) - want).max() <= 1e-6
    assert np.abs(mlflow.pyfunc.load_model("models:/kdigits/1").predict(X) - want).max() <= 1e-6
    info = mlflow.models.get_model_info("models:/kdigits/1")
    assert set(info.flavors) == {"keras", "python_function"} and info.flavors["keras"]["keras_backend"] == "torch"
    folder = mlflow.artifacts.download_artifacts("models:/kdigits/1", dst_path=str(tmp_path / "dl"))
    with open(os.path.join(folder, "model.keras"), "rb") as f:
        assert f.read() == store.blobs.get_bytes(v.digest)  # the .keras file MLflow loads is ours
    # a Lambda layer: Keras' safe mode refuses it in MLflow as here; out of safe mode it loads
    from mlflow.tracking import MlflowClient

    assert MlflowClient(uri, uri).get_model_version("klam", "1").tags["mlops.runs_code"] == "true"
    with pytest.raises(Exception, match="(?i)lambda|safe_mode"):
        mlflow.keras.load_model("models:/klam/1")
    unsafe = mlflow.keras.load_model("models:/klam/1", load_model_kwargs={"safe_mode": False})
    assert np.allclose(unsafe.predict(X[:4], verbose=0), lam.predict(X[:4], verbose=0), atol=1e-6)


# -- W&B --------------------------------------------------------------------------------------------
def test_wandb_mirror_of_torch_and_keras_versions_offline(store, project, monkeypatch):
    wandb = pytest.importorskip("wandb")
    import mlops_jupyter as mj
    from mlops_jupyter.integrations.wandb_upload import Mirror

    from .test_wandb import Written, manifest_paths

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    net, X, y = make_net()
    tv = mj.models.register(net, name="digits", example=X[:8])
    kv = mj.models.register(keras_model(X, y), name="kdigits", example=X[:8])
    mirror = Mirror(store, project="team-x/nets")
    try:
        remotes = [mirror._standalone_model(v.id) for v in (tv, kv)]
    finally:
        wandb.teardown()  # the W&B service this process started; its run files are complete once it is gone
    for remote, v, fname, library in zip(remotes, (tv, kv), ("model.pt2.zip", "model.keras"), ("torch", "keras")):
        art = Written(project, remote.rsplit("/", 1)[1]).artifact("model", v.name)
        meta = json.loads(art.metadata)
        assert (meta["flavor"], meta["library"], meta["file"], meta["blake3"]) == (library, library, fname, v.digest)
        assert meta["signature"]["type"] == "tensors" and meta["signature"]["inputs"][0]["shape"] == [None, 20]
        assert manifest_paths(art) == sorted(["mlops-model.json", fname])


# -- fsck -------------------------------------------------------------------------------------------
def test_fsck_flags_damaged_torch_and_keras_files_one_line_per_version(store, project):
    import mlops_jupyter as mj
    from mlops_jupyter.cli import main
    from mlops_jupyter.store.maintenance import fsck

    net, X, y = make_net()
    tv = mj.models.register(net, name="digits", example=X[:8])
    kv = mj.models.register(keras_model(X, y), name="kdigits", example=X[:8])
    good = store.blobs.get_bytes(tv.digest)
    assert fsck(store).ok
    mj.models.register(make_net(seed=1)[0], name="other", example=X[:8])
    other = mj.models.get("other@v1")

    # a blob changed in place: its digest no longer matches
    tamper(store, other.digest, lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:])
    # files broken before they were stored (digests match): a truncated .keras, a bad safetensors header
    set_version_bytes(store, kv.ref, store.blobs.get_bytes(kv.digest)[:-200])
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files["weights.safetensors"] = (50).to_bytes(8, "little") + b"{not json" + files["weights.safetensors"][17:]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    set_version_bytes(store, tv.ref, buf.getvalue())

    rep = fsck(store)
    assert not rep.ok
    assert [users for _, users in rep.corrupted] == [["model other@v1"]]
    assert rep.damaged == [("model digits@v1 (torch)", "weights.safetensors: safetensors header is not JSON"),
                           ("model kdigits@v1 (keras)", rep.damaged[1][1])]
    assert rep.damaged[1][1].startswith("not a readable zip archive")
    lines = str(rep).splitlines()
    assert lines[0].endswith("1 corrupted, 0 missing, 2 damaged models")
    assert [ln for ln in lines if ln.startswith("  damaged")] == [
        "  damaged model digits@v1 (torch): weights.safetensors: safetensors header is not JSON",
        f"  damaged model kdigits@v1 (keras): {rep.damaged[1][1]}"]
    assert main(["fsck"]) == 1


def test_fsck_imports_neither_torch_nor_keras(store, project):
    import mlops_jupyter as mj

    net, X, y = make_net()
    mj.models.register(net, name="digits", example=X[:8])
    mj.models.register(keras_model(X, y), name="kdigits", example=X[:8])
    code = ("import sys; from mlops_jupyter.store import open_store; from mlops_jupyter.store.maintenance import fsck; "
            "r = fsck(open_store()); print(r.ok, r.checked, sorted(m for m in ('torch', 'keras') if m in sys.modules))")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=project, env=python_env(), timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    ok, checked, imported = out.stdout.split(" ", 2)
    assert ok == "True" and int(checked) >= 2 and imported.strip() == "[]"


def test_fsck_knows_the_torch_format_files():
    from mlops_jupyter.models import torch_format
    from mlops_jupyter.store.maintenance import MODEL_ARCHIVES

    assert MODEL_ARCHIVES["torch"].members == torch_format.FILES
    assert set(MODEL_ARCHIVES) <= {"torch", "keras"}


# -- lineage ----------------------------------------------------------------------------------------
def test_lineage_of_a_torch_model_shows_the_dataset_its_run_added(store, project):
    import pandas as pd

    import mlops_jupyter as mj

    net, X, _ = make_net()
    with mj.start_run("train-net"):
        mj.data.add(pd.DataFrame(X[:, :3], columns=["a", "b", "c"]), name="digits-train")
        v = mj.models.register(net, name="digits", example=X[:8])
    assert [d["ref"] for d in v.datasets] == ["digits-train@v1"]  # as a sklearn model's version records it
    g = mj.data.lineage("models:/digits/1")
    labels = {label: kind for kind, label, _ in g.nodes.values()}
    assert labels.get("digits@v1") == "model" and labels.get("digits-train@v1") == "data"
    assert any(kind == "run" for kind in labels.values())
    assert "digits@v1" in str(mj.data.lineage("digits-train@v1"))
