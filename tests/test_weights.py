import functools
import hashlib
import http.server
import threading

import pytest
import torch
from safetensors.torch import save_file

import dream_core as dc
from conftest import random_backbone


def test_random_init_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = dc.load_backbone("alexnet", "random", seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    b = dc.load_backbone("alexnet", "random", seed=5)
    c = dc.load_backbone("alexnet", "random", seed=6)
    weight = "features.0.weight"
    assert torch.equal(a.model.state_dict()[weight], b.model.state_dict()[weight])
    assert not torch.equal(a.model.state_dict()[weight], c.model.state_dict()[weight])


def torchvision_layout(name, seed=0):
    """A random backbone whose state dict has torchvision's keys (batch norms not folded)."""
    return dc.load_backbone(name, "random", seed=seed, fuse_batchnorm=False)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_file_round_trip(tmp_path, suffix):
    source = torchvision_layout("googlenet", seed=3)
    state = source.model.state_dict()
    path = tmp_path / f"googlenet{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    exact = dc.load_backbone("googlenet", path, fuse_batchnorm=False)
    for key, value in exact.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    loaded = dc.load_backbone("googlenet", path)  # the default: batch norms folded into the convolutions
    assert not any(p.requires_grad for p in loaded.model.parameters())
    x = torch.rand(1, 3, 64, 64)
    expected = source.extractor(["inception3b"])(x)["inception3b"]
    assert torch.equal(exact.extractor(["inception3b"])(x)["inception3b"], expected)
    assert torch.allclose(loaded.extractor(["inception3b"])(x)["inception3b"], expected, rtol=1e-4, atol=1e-5)


def test_torchvision_style_file_with_aux_heads_and_module_prefix_loads(tmp_path):
    state = dict(torchvision_layout("googlenet").model.state_dict())
    state["aux1.fc2.weight"] = torch.zeros(1000, 1024)  # pretrained googlenet files carry aux heads
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    loaded = dc.load_backbone("googlenet", path, fuse_batchnorm=False)
    assert torch.equal(loaded.model.state_dict()["conv1.conv.weight"], state["conv1.conv.weight"])


def test_wrong_keys_are_named(tmp_path):
    state = dict(random_backbone("alexnet").model.state_dict())
    del state["features.3.weight"]
    state["features.99.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(dc.WeightsError) as error:
        dc.load_backbone("alexnet", path)
    message = str(error.value)
    assert "does not fit alexnet" in message and str(path) in message
    assert "missing keys features.3.weight" in message and "unexpected keys features.99.weight" in message


def test_wrong_backbone_file_names_the_shapes(tmp_path):
    path = tmp_path / "vgg16-as-vgg19.pth"
    state = dict(random_backbone("alexnet").model.state_dict())
    state["features.0.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, path)
    with pytest.raises(dc.WeightsError, match=r"wrong shape.*features.0.weight \(64, 3, 3, 3\) \(expected \(64, 3, 11, 11\)\)"):
        dc.load_backbone("alexnet", path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(dc.WeightsError, match="no file at"):
        dc.load_backbone("alexnet", tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(dc.WeightsError, match="refused unread, nothing in it ran"):
        dc.load_backbone("alexnet", garbage)
    not_tensors = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_tensors)
    with pytest.raises(dc.WeightsError, match="holds a list, not a state dict"):
        dc.load_backbone("alexnet", not_tensors)


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/'served'."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _serve_state(root, state, name_for_digest):
    staging = root / "staging.pth"
    torch.save(state, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()
    name = name_for_digest(digest)
    staging.rename(root / name)
    return name


def test_download_checks_the_digest_and_keeps_only_the_whole_file(server, tmp_path):
    root, base = server
    state = random_backbone("alexnet", seed=9).model.state_dict()
    name = _serve_state(root, state, lambda digest: f"alexnet-{digest[:8]}.pth")
    path = dc.download_weights(f"{base}/{name}", tmp_path / "models")
    assert path == tmp_path / "models" / name and path.read_bytes() == (root / name).read_bytes()
    assert [p.name for p in (tmp_path / "models").iterdir()] == [name]  # no part file left beside it
    loaded = dc.load_backbone("alexnet", path)
    assert torch.equal(loaded.model.state_dict()["features.0.weight"], state["features.0.weight"])
    # Already there: no second download (the server is not asked again).
    (root / name).unlink()
    assert dc.download_weights(f"{base}/{name}", tmp_path / "models") == path


def test_download_checksum_mismatch_deletes_the_file(server, tmp_path):
    root, base = server
    name = _serve_state(root, {"w": torch.ones(3)}, lambda digest: "alexnet-00000000.pth")
    with pytest.raises(dc.WeightsError, match="checksum mismatch.*should start with 00000000"):
        dc.download_weights(f"{base}/{name}", tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_download_cancelled_midway_leaves_nothing(server, tmp_path, monkeypatch):
    """Ctrl-C or the host's Cancel arrives as an exception inside the transfer: no half file stays."""
    root, base = server
    name = _serve_state(root, {"w": torch.randn(300_000)}, lambda digest: f"big-{digest[:8]}.pth")

    class Cancelled(Exception):
        pass

    def cancelled_sha256(*args):
        class Hash:
            def update(self, data):
                raise Cancelled

        return Hash()

    monkeypatch.setattr(hashlib, "sha256", cancelled_sha256)
    with pytest.raises(Cancelled):
        dc.download_weights(f"{base}/{name}", tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_offline_download_names_the_url_and_the_folder(server, tmp_path):
    _, base = server
    url = f"{base}/missing-12345678.pth"
    with pytest.raises(dc.WeightsError) as error:
        dc.download_weights(url, tmp_path / "models")
    message = str(error.value)
    assert url in message and str(tmp_path / "models") in message and "put it at" in message


def test_download_from_a_file_url(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    name = _serve_state(source, {"w": torch.arange(4.0)}, lambda digest: f"tiny-{digest[:10]}.pth")
    path = dc.download_weights((source / name).as_uri(), tmp_path / "models")
    assert torch.equal(dc.read_state_dict(path)["w"], torch.arange(4.0))


def test_torchvision_weights_need_a_folder():
    with pytest.raises(dc.WeightsError, match="weights_dir"):
        dc.load_backbone("alexnet", "torchvision")
