from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from clip_fixtures import TINY_SIZE, tiny_config, write_tiny_weights
from open_clip.factory import load_state_dict

from ipad_qc.clip import (
    BackboneError,
    CheckpointError,
    IpadClip,
    IpadClipConfig,
    build_backbone,
    load_model,
    save_checkpoint,
)
from ipad_qc.clip import backbone as backbone_module
from ipad_qc.clip.backbone import uses_quick_gelu
from ipad_qc.clip.text import prompt_texts


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture()
def model(weights: Path) -> IpadClip:
    return IpadClip(tiny_config(weights))


def pixels(batch: int = 2, size: int = TINY_SIZE, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def names_of(model: IpadClip, parameters) -> set[str]:
    ids = {id(p) for p in parameters}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def backbone_names(model: IpadClip) -> set[str]:
    return {n for n, _ in model.named_parameters() if n.startswith(("vision.visual.", "prompts.tower."))}


def parameters_of(model: IpadClip, *prefixes: str) -> set[str]:
    return {n for n, _ in model.named_parameters() if n.startswith(prefixes)}


def test_each_stage_trains_exactly_what_the_paper_names(model: IpadClip) -> None:
    """Section 4.4: I adapters + projectors + FC heads; II the text prompts only; III adapters + projectors."""
    assert backbone_names(model) and not any(p.requires_grad for n, p in model.named_parameters()
                                             if n in backbone_names(model))
    expected = {
        1: parameters_of(model, "vision.adapters.", "vision.projectors.", "cls_head.", "seg_head."),
        2: {"prompts.context", "prompts.deep_prompts"},
        3: parameters_of(model, "vision.adapters.", "vision.projectors."),
    }
    assert expected[1] > expected[3] and parameters_of(model, "vision.projectors.")
    for stage, names in expected.items():
        trainable = names_of(model, model.set_stage(stage))
        assert trainable == names, f"stage {stage}"
        assert trainable == {n for n, p in model.named_parameters() if p.requires_grad}
        assert not trainable & backbone_names(model), f"stage {stage} would train the frozen CLIP"
    assert model.head == "text" and model.text_frozen, "Stage III predicts with the frozen anchors (Eq. 12)"


def test_output_shapes_and_probabilities(model: IpadClip) -> None:
    for stage in (1, 2, 3):
        model.set_stage(stage)
        output = model(pixels())
        class_probs, seg_probs = output.probabilities()
        assert class_probs.shape == (2, 4) and seg_probs.shape == (2, 4, TINY_SIZE, TINY_SIZE)
        torch.testing.assert_close(class_probs.sum(1), torch.ones(2))
        torch.testing.assert_close(seg_probs.sum(1), torch.ones(2, TINY_SIZE, TINY_SIZE))


def test_eq12_uses_temperature_scaled_cosines(model: IpadClip) -> None:
    model.set_stage(3)
    with torch.no_grad():
        output = model(pixels())
        image_features, _ = model.vision(pixels())
    text = torch.nn.functional.normalize(model.text_embeddings, dim=-1)
    expected = torch.nn.functional.normalize(image_features, dim=-1) @ text.T / model.config.temperature
    torch.testing.assert_close(output.class_logits, expected)
    assert output.class_logits.abs().max() <= 1.0 / model.config.temperature + 1e-4


def test_deep_prompts_change_text_embeddings(model: IpadClip) -> None:
    prompts = model.prompts
    assert prompts.deep_prompts is not None and prompts.deep_prompts.shape[0] == 2  # 3 of 4 layers, minus layer 1
    with torch.no_grad():
        before = prompts().clone()
        prompts.deep_prompts[-1] += 1.0  # only the deepest prompted layer
        after = prompts().clone()
        prompts.context += 0.5
        with_context = prompts()
    assert not torch.allclose(before, after)
    assert not torch.allclose(after, with_context)


def test_deep_prompts_replace_positions_1_to_j_and_keep_sot(model: IpadClip) -> None:
    """Eq. 4-6: in layers 2..D the first J tokens after SOT are fresh learnable ones (the transformed
    ones discarded); SOT and every later token carry on; deeper layers get their input unchanged."""
    prompts = model.prompts
    blocks = prompts.tower.transformer.resblocks
    inputs, outputs = {}, {}
    for index, block in enumerate(blocks):
        block.register_forward_pre_hook(lambda m, args, i=index: inputs.__setitem__(i, args[0].detach().clone()))
        block.register_forward_hook(lambda m, args, out, i=index: outputs.__setitem__(i, out.detach().clone()))
    with torch.no_grad():
        prompts()
    j, deep_layers = prompts.deep_length, prompts.deep_prompts.shape[0] + 1
    assert deep_layers == 3 and len(blocks) == 4
    positional = prompts.tower.positional_embedding
    torch.testing.assert_close(inputs[0][:, 1:1 + prompts.prompt_length],
                               prompts.context + positional[1:1 + prompts.prompt_length])  # layer 1: [N]/[A] words
    torch.testing.assert_close(inputs[0][:, 0], prompts.word_embeddings[:, 0] + positional[0])  # SOT
    for layer in range(1, len(blocks)):
        before, given = outputs[layer - 1], inputs[layer]
        torch.testing.assert_close(given[:, 0], before[:, 0])  # SOT kept
        torch.testing.assert_close(given[:, 1 + j:], before[:, 1 + j:])
        if layer < deep_layers:
            torch.testing.assert_close(given[:, 1:1 + j], prompts.deep_prompts[layer - 1].expand(len(given), -1, -1))
        else:
            torch.testing.assert_close(given, before)


def test_eot_pooling_ignores_padding_under_causal_mask(model: IpadClip) -> None:
    prompts = model.prompts
    eot = int(prompts.pool_positions.max())
    with torch.no_grad():
        before = prompts().clone()
        prompts.word_embeddings[:, eot + 1:] += 3.0  # padding after every prompt's EOT
        unchanged = prompts().clone()
        prompts.word_embeddings[:, eot - 1] += 3.0  # a token before (or at) the EOT of the longest prompt
        changed = prompts()
    torch.testing.assert_close(before, unchanged)
    assert not torch.allclose(before, changed)


def test_adapters_only_at_configured_layers_and_feed_next_layer(weights: Path) -> None:
    model = IpadClip(tiny_config(weights, adapter_layers=(2,), beta=0.1))
    assert list(model.vision.adapters) == ["2"]
    seen = {}
    blocks = model.vision.visual.transformer.resblocks
    blocks[1].register_forward_hook(lambda m, i, o: seen.__setitem__("out2", o.detach().clone()))
    blocks[2].register_forward_pre_hook(lambda m, i: seen.__setitem__("in3", i[0].detach().clone()))
    blocks[0].register_forward_hook(lambda m, i, o: seen.__setitem__("out1", o.detach().clone()))
    blocks[1].register_forward_pre_hook(lambda m, i: seen.__setitem__("in2", i[0].detach().clone()))
    with torch.no_grad():
        model.vision(pixels(1))
        adapted = 0.1 * model.vision.adapters["2"](seen["out2"]) + 0.9 * seen["out2"]
    torch.testing.assert_close(seen["in3"], adapted)
    torch.testing.assert_close(seen["in2"], seen["out1"])  # no adapter after layer 1


def test_projectors_receive_the_adapted_feature(weights: Path) -> None:
    """Eq. 9 projects F~ (after the adapter), not the block's raw output."""
    model = IpadClip(tiny_config(weights, adapter_layers=(2,), tap_layers=(2, 4), beta=0.1))
    seen = {}
    model.vision.visual.transformer.resblocks[1].register_forward_hook(
        lambda m, i, o: seen.__setitem__("out2", o.detach().clone()))
    projector = model.vision.projectors["2"]
    projector.register_forward_pre_hook(lambda m, i: seen.__setitem__("proj2", i[0].detach().clone()))
    with torch.no_grad():
        model.vision(pixels(1))
        adapted = 0.1 * model.vision.adapters["2"](seen["out2"]) + 0.9 * seen["out2"]
    torch.testing.assert_close(seen["proj2"], adapted[:, 1:])


def test_without_mg_no_projector_is_trained_and_clips_frozen_path_maps_the_last_layer(weights: Path,
                                                                                      tmp_path: Path) -> None:
    """Section 5.3.2: "the projector modules are removed"; the last layer's tokens reach the text space
    through CLIP's own frozen ln_post and proj."""
    model = IpadClip(tiny_config(weights, multi_granularity=False))
    assert len(model.vision.projectors) == 0
    assert names_of(model, model.set_stage(3)) == parameters_of(model, "vision.adapters.")
    assert names_of(model, model.set_stage(1)) == parameters_of(model, "vision.adapters.", "cls_head.", "seg_head.")
    visual, seen = model.vision.visual, {}
    visual.transformer.resblocks[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("last", o.detach()))
    with torch.no_grad():
        _, feature_map = model.vision(pixels(1))
        expected = visual.ln_post(seen["last"][:, 1:]) @ visual.proj
    torch.testing.assert_close(feature_map.flatten(2).transpose(1, 2), expected)
    path = save_checkpoint(model, tmp_path / "no-mg.safetensors", stages=[1])
    assert not [k for k in load_state_dict(str(path)) if "projectors" in k or "ln_post" in k or k.endswith("proj")]
    assert torch.equal(load_model(path)(pixels(1)).seg_logits, model(pixels(1)).seg_logits)


def test_layer_choices_scale_with_depth() -> None:
    config = IpadClipConfig()
    assert config.resolved_adapter_layers(24) == (1, 2, 3, 4, 5, 6)
    assert config.resolved_tap_layers(24) == (6, 12, 18, 24)
    assert config.resolved_adapter_layers(12) == (1, 2, 3)
    assert config.resolved_tap_layers(12) == (3, 6, 9, 12)
    assert config.resolved_deep_prompt_layers(12) == 9
    assert IpadClipConfig(tap_layers=(2, 4)).resolved_tap_layers(12) == (2, 4)
    with pytest.raises(ValueError, match="outside"):
        IpadClipConfig(tap_layers=(30,)).resolved_tap_layers(24)


def test_ablation_switches(weights: Path) -> None:
    no_lte = IpadClip(tiny_config(weights, learnable_text=False))
    assert no_lte.prompts.context is None and no_lte.prompts.deep_prompts is None
    assert prompt_texts(no_lte.config)[1] == "a photo of an object ghosting."
    no_cls = tiny_config(weights, object_context=False)
    assert all("object" not in text for text in prompt_texts(no_cls))
    assert prompt_texts(no_cls)[2].endswith("lens flare.")
    no_ad = IpadClip(tiny_config(weights, adapters=False))
    assert len(no_ad.vision.adapters) == 0 and not any("adapters" in n for n in names_of(no_ad, no_ad.set_stage(1)))
    assert IpadClip(tiny_config(weights, multi_granularity=False)).vision.uses_clip_projection


def test_local_weight_file_loads_exactly_and_resizes_positions(weights: Path) -> None:
    state = load_state_dict(str(weights))
    backbone = build_backbone(tiny_config(weights))
    torch.testing.assert_close(backbone.visual.conv1.weight, state["visual.conv1.weight"])
    torch.testing.assert_close(backbone.text.token_embedding.weight, state["token_embedding.weight"])
    assert backbone.weights_sha256 and len(backbone.weights_sha256) == 64
    bigger = build_backbone(tiny_config(weights, image_size=96), with_text=False)
    assert bigger.visual.positional_embedding.shape[0] == (96 // 16) ** 2 + 1
    assert bigger.text is None


def test_missing_weights_give_one_clear_error(weights: Path, monkeypatch) -> None:
    with pytest.raises(BackboneError, match="not found"):
        build_backbone(tiny_config(Path("/nowhere/weights.safetensors")))
    with pytest.raises(BackboneError, match="no pretrained tag 'bogus'.*openai"):
        build_backbone(IpadClipConfig(backbone="ViT-B-32", pretrained="bogus", image_size=224))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(backbone_module.open_clip, "download_pretrained", offline)
    with pytest.raises(BackboneError, match="On a connected machine run.*pretrained=/path"):
        build_backbone(IpadClipConfig(backbone="ViT-B-32", pretrained="openai", image_size=224))


def test_quick_gelu_for_openai_weights(weights: Path) -> None:
    assert uses_quick_gelu(IpadClipConfig(backbone="ViT-B-32", pretrained="openai"), {})
    assert not uses_quick_gelu(IpadClipConfig(backbone="ViT-B-32", pretrained="laion2b_s34b_b79k"), {})
    backbone = build_backbone(tiny_config(weights, quick_gelu=True), with_text=False)
    activations = {type(m).__name__ for m in backbone.visual.modules()}
    assert "QuickGELU" in activations and "GELU" not in activations


def trained(model: IpadClip) -> IpadClip:
    """Perturb every trainable part, as training would, so a round trip is a real test."""
    with torch.no_grad():
        for stage in (1, 2, 3):
            for parameter in model.set_stage(stage):
                parameter.add_(torch.randn_like(parameter) * 0.1)
    model.set_stage(3)
    return model.eval()


def test_checkpoint_round_trip_identical_without_text_encoder(model: IpadClip, tmp_path: Path, monkeypatch) -> None:
    model = trained(model)
    with torch.no_grad():
        expected = model(pixels())
    path = save_checkpoint(model, tmp_path / "model.safetensors", stages=[1, 2, 3])

    def no_text_tower(*args, **kwargs):
        raise AssertionError("inference from a checkpoint must not build the text encoder")

    monkeypatch.setattr(backbone_module, "_build_text_tower", no_text_tower)
    loaded = load_model(path)
    assert loaded.prompts is None
    with torch.no_grad():
        got = loaded(pixels())
    assert torch.equal(got.class_logits, expected.class_logits)
    assert torch.equal(got.seg_logits, expected.seg_logits)


def test_stage1_checkpoint_keeps_fc_head(model: IpadClip, tmp_path: Path) -> None:
    model.set_stage(1)
    with torch.no_grad():
        model.cls_head.bias.add_(torch.tensor([0.0, 5.0, 0.0, 0.0]))
        expected = model(pixels()).class_logits
    path = save_checkpoint(model, tmp_path / "s1.safetensors", stages=[1])
    with torch.no_grad():
        assert torch.equal(load_model(path)(pixels()).class_logits, expected)


def test_mismatched_checkpoints_are_refused(model: IpadClip, weights: Path, tmp_path: Path) -> None:
    path = save_checkpoint(trained(model), tmp_path / "model.safetensors", stages=[1, 2, 3])
    with pytest.raises(CheckpointError, match="image_size=64.*image_size=96"):
        load_model(path, image_size=96)
    with pytest.raises(CheckpointError, match="backbone='ipad-tiny'"):
        load_model(path, backbone="ViT-B-16")
    other = write_tiny_weights(tmp_path / "other.safetensors", seed=1)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_model(path, pretrained=str(other))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_model(junk)


def test_checkpoint_holds_no_backbone_and_loads_without_code(model: IpadClip, tmp_path: Path) -> None:
    from safetensors import safe_open

    path = save_checkpoint(trained(model), tmp_path / "model.safetensors", stages=[1, 2, 3])
    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        metadata = handle.metadata()
    assert "text_embeddings" in keys and not any(k.startswith(("vision.visual.", "prompts.tower.")) for k in keys)
    assert IpadClipConfig.from_json(metadata["config"]).image_size == TINY_SIZE
    assert np.prod(list(load_model(path).text_embeddings.shape)) > 0


def bf16_autocast(device: str = "cpu"):
    """The CUDA path's bf16 autocast, on the CPU (where the code itself runs fp32)."""
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("stage", [1, 3])
def test_scores_are_fp32_under_bf16_autocast(model: IpadClip, stage: int, monkeypatch) -> None:
    """The backbone may run in bf16; the heads and the softmax may not: bf16 has 8 mantissa bits, so
    saturated probabilities would tie by the thousand (C-AP 38.6 -> 36.4 in an emulation)."""
    from ipad_qc.training import predict

    model = trained(model)
    model.set_stage(stage)
    batch = pixels()
    with torch.no_grad():
        reference = [t.numpy() for t in model(batch).probabilities()]
        with bf16_autocast():
            output = model(batch)
            features = model.vision(batch)
        assert output.class_logits.dtype == output.seg_logits.dtype == torch.float32
        exact_head = model.heads(features[0].float(), features[1].float(), batch.shape[-2:])
    assert torch.equal(output.seg_logits, exact_head.seg_logits), "the head must not be what rounds"
    monkeypatch.setattr(predict, "autocast_for", bf16_autocast)
    loader = [(batch, torch.tensor([1, 0]), torch.zeros(2, TINY_SIZE, TINY_SIZE), torch.tensor([True, True]))]
    class_probs, _, seg_probs, _, _ = next(predict.predictions(model, loader, "cpu"))
    for got, expected in zip((class_probs, seg_probs), reference, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=0.03)
    for k in range(seg_probs.shape[1]):
        assert np.unique(seg_probs[:, k]).size >= 0.95 * np.unique(reference[1][:, k]).size, "no bf16 ties"
